"""The admin is reachable only from the allowed networks: listener rules forward it for them and
answer 404 to everyone else; the firewall (and the app, tests/app) close the encoded spellings."""

import fnmatch
import itertools
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from infra import app_contract
from infra.web.admin import ALLOW_PRIORITY, DENY_PRIORITY, admin_paths, in_groups
from testkit.program import ProgramRun, run_program
from tests.infra.services.ecs_api import container_definitions, shape_errors

RULE = "aws:lb/listenerRule:ListenerRule"
LISTENER = "aws:lb/listener:Listener"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
URLS = Path(__file__).resolve().parents[3] / "app" / "config" / "urls.py"
NETWORKS = ["203.0.113.0/24", "198.51.100.7/32", "2001:db8::/32", "192.0.2.0/28"]


@pytest.fixture(scope="module")
def allowed_run() -> ProgramRun:
    return run_program("dev", {"adminAllowedCidrs": NETWORKS})


def rules_of(run: ProgramRun) -> list[dict]:
    """The admin's rules (a traffic-shifting web deployment adds its own: test_traffic.py)."""
    admin = [rule.inputs for rule in run.of_type(RULE) if "-admin-" in rule.name]
    return sorted(admin, key=lambda inputs: inputs["priority"])


def alb_matches(pattern: str, path: str) -> bool:
    """ALB path patterns: case-sensitive, `*` any characters, `?` exactly one."""
    return re.fullmatch(fnmatch.translate(pattern), path) is not None


def test_the_contract_names_the_apps_admin_path() -> None:
    assert f'path("{app_contract.ADMIN_PATH.strip("/")}/", admin.site.urls)' in URLS.read_text()


def test_an_open_admin_declares_no_rules(dev_run: ProgramRun) -> None:
    assert dev_run.of_type(RULE) == []


def test_prod_closes_the_admin_to_everyone_on_the_serving_listener(prod_run: ProgramRun) -> None:
    https = prod_run.one(LISTENER, "https")
    rules = rules_of(prod_run)
    assert rules, "prod's admin must be closed"
    for rule in rules:
        assert rule["listenerArn"] == https.state["arn"], "HTTP only redirects; HTTPS serves the app"
        assert rule["actions"] == [
            {
                "type": "fixed-response",
                "fixedResponse": {
                    "contentType": "text/plain",
                    "messageBody": "Not Found",
                    "statusCode": "404",
                },
            }
        ]
        assert all("sourceIp" not in condition for condition in rule["conditions"])
    patterns = [
        value
        for rule in rules
        for condition in rule["conditions"]
        for value in condition["pathPattern"]["values"]
    ]
    assert patterns == list(admin_paths())


def test_allowed_networks_reach_the_admin_and_everyone_else_gets_404(allowed_run: ProgramRun) -> None:
    rules = rules_of(allowed_run)
    allow = [rule for rule in rules if rule["actions"][0]["type"] == "forward"]
    deny = [rule for rule in rules if rule["actions"][0]["type"] == "fixed-response"]
    assert [rule["priority"] for rule in allow] == [ALLOW_PRIORITY, ALLOW_PRIORITY + 1]
    assert all(rule["priority"] >= DENY_PRIORITY for rule in deny), "allow rules are evaluated first"
    target_group = allowed_run.one(TARGET_GROUP).state["arn"]
    networks = []
    for rule in allow:
        assert rule["actions"] == [{"type": "forward", "targetGroupArn": target_group}]
        [paths, sources] = rule["conditions"]
        assert paths["pathPattern"]["values"] == list(admin_paths())
        values = sources["sourceIp"]["values"]
        assert len(values) <= 3 and len(values) + len(admin_paths()) <= 5, "ALB condition value quotas"
        networks += values
    assert networks == NETWORKS
    web = allowed_run.one("aws:ecs/service:Service", "web-service")
    assert {rule.urn for rule in allowed_run.of_type(RULE)} <= set(web.dependencies), (
        "web serves only once the admin is closed"
    )


def spellings(path: str) -> set[str]:
    """Every way of writing `path` with its characters literal or percent-encoded (both hex cases)."""
    options = [
        {char, f"%{ord(char):02X}", f"%{ord(char):02x}"} if char != "/" or index else {char}
        for index, char in enumerate(path)
    ]
    return {"".join(chosen) for chosen in itertools.product(*options)}


def waf_admin_match(statement: dict, path: str) -> bool:
    """The firewall's admin statement on a raw path: URL_DECODE then LOWERCASE (one decoding pass,
    as gunicorn does), then STARTS_WITH (WAF developer guide, text transformations)."""
    match = statement.get("andStatement", {}).get("statements", [statement])[0]["byteMatchStatement"]
    decoded = path
    for transformation in sorted(match["textTransformations"], key=lambda step: step["priority"]):
        decoded = {"URL_DECODE": unquote, "LOWERCASE": str.lower}[transformation["type"]](decoded)
    assert match["positionalConstraint"] == "STARTS_WITH" and match["fieldToMatch"] == {"uriPath": {}}
    return decoded.startswith(match["searchString"])


def test_every_spelling_of_the_admin_path_is_closed_by_the_listener_or_the_firewall(
    prod_run: ProgramRun,
) -> None:
    """The ALB matches the raw path; gunicorn decodes it before Django routes it: what the listener
    rules cannot see (an encoded character), the firewall's decoded match closes."""
    [admin] = [
        rule for rule in prod_run.one("aws:wafv2/webAcl:WebAcl").inputs["rules"] if rule["name"] == "admin"
    ]
    listener = admin_paths()
    for spelling in spellings(app_contract.ADMIN_PATH):
        for path in (spelling, f"{spelling}login/"):
            closed = any(alb_matches(pattern, path) for pattern in listener) or waf_admin_match(
                admin["statement"], path
            )
            assert closed, f"{path} reaches the admin"
    for public in ("/", "/api/signups", "/healthz", "/readyz", "/static/app.css", "/%2Fadmin/"):
        assert not any(alb_matches(pattern, public) for pattern in listener), public
        assert not waf_admin_match(admin["statement"], public), public


def test_networks_are_grouped_by_three() -> None:
    assert in_groups(["a", "b", "c", "d", "e", "f", "g"]) == [("a", "b", "c"), ("d", "e", "f"), ("g",)]
    assert in_groups([]) == []


def web_environment(run: ProgramRun) -> dict[str, str]:
    """The web container's `environment`: ECS's ContainerDefinition.environment is a list of
    KeyValuePair {name, value} (botocore's ECS model; the shape is checked here, not assumed)."""
    [web] = container_definitions(run.one("aws:ecs/taskDefinition:TaskDefinition", "web-"))
    assert shape_errors("EnvironmentVariables", web["environment"]) == ""
    return {variable["name"]: variable["value"] for variable in web["environment"]}


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"adminAllowedCidrs": NETWORKS}, ",".join(NETWORKS)),
        ({"adminAllowedCidrs": []}, ""),  # closed to everyone
        ({}, "0.0.0.0/0,::/0"),  # Pulumi.yaml's default: open
    ],
)
def test_the_app_gets_the_admin_networks_to_check_after_decoding(config: dict, expected: str) -> None:
    """docs/infra.md's third fence: the app checks ADMIN_ALLOWED_CIDRS (core.admin_fence)."""
    run = run_program("dev", config)
    assert web_environment(run)[app_contract.ADMIN_ALLOWED_CIDRS] == expected
