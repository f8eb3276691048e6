"""Values AWS rejects or ignores, checked against AWS's own rules, not against the program's output.

Each rule below comes from AWS's documentation: the service model text botocore ships (read here
from the installed botocore, so the test fails if the text it relies on changes) or a named user
guide page. The program's declared values of every test stack must satisfy them. A value outside
them fails only at `pulumi up`, after everything before it was created.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest

from testkit.program import ProgramRun, run_program

STACKS = ["dev_run", "prod_run", "ephemeral_run", "custom_run", "admin_networks_run"]
RULE = "aws:lb/listenerRule:ListenerRule"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


@pytest.fixture(scope="module")
def admin_networks_run() -> ProgramRun:
    """Listener rules with source networks, and the firewall's admin rule with IP sets."""
    return run_program(
        "pr-789",
        {
            "ephemeral": True,
            "wafEnabled": True,
            "adminAllowedCidrs": ["203.0.113.0/24", "0.0.0.0/0", "2001:db8::/32"],
        },
    )


def documentation(service: str, shape: str, member: str) -> str:
    """The text of a member's documentation in botocore's service model, without markup."""
    model = botocore.session.get_session().get_service_model(service)
    text = model.shape_for(shape).members[member].documentation
    return " ".join(re.sub(r"<[^>]+>", " ", text).replace("&amp;", "&").split())


# --- Elastic Load Balancing: listener rule conditions ------------------------------------------------

# ELBv2 `RuleCondition.Values`: "A path pattern is case-sensitive, can be up to 128 characters in
# length, and can contain any of the following characters. A-Z, a-z, 0-9 _ - . $ / ~ " ' @ : +
# & (using &amp;) * (matches 0 or more characters) ? (matches exactly 1 character)".
PATH_PATTERN = re.compile(r"[A-Za-z0-9_\-.$/~\"'@:+&*?]{1,128}")
# Same shape, for host-header: "A-Z, a-z, 0-9 - . * ? ... up to 128 characters"; HostHeaderConfig
# adds "You must include at least one "." character. You can include only alphabetical characters
# after the final "." character."
HOST_PATTERN = re.compile(r"[A-Za-z0-9\-.*?]{0,127}\.[A-Za-z*?]+")
# ELB user guide, "Listener rules for your Application Load Balancer", condition types: up to three
# match evaluations per condition and up to five per rule; SourceIpConfig: at most five values.
VALUES_PER_CONDITION = 3
VALUES_PER_RULE = 5


def test_the_rules_quoted_here_are_the_ones_botocore_documents() -> None:
    values = documentation("elbv2", "RuleCondition", "Values")
    assert "can be up to 128 characters in length" in values
    assert "A-Z, a-z, 0-9 _ - . $ / ~ \" ' @ : + & (using &amp;) * (matches 0 or more characters)" in values
    host = documentation("elbv2", "HostHeaderConditionConfig", "Values")
    assert 'You must include at least one "." character' in host
    assert "total number of values must be less than, or equal to five" in documentation(
        "elbv2", "SourceIpConditionConfig", "Values"
    )


def condition_values(condition: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for field, config in condition.items():
        for value in config.get("values", []):
            yield field, value


@pytest.mark.parametrize("run_name", STACKS)
def test_every_listener_rule_value_is_one_elb_accepts(run_name: str, request: pytest.FixtureRequest) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    for rule in run.of_type(RULE):
        total = 0
        for condition in rule.inputs["conditions"]:
            values = list(condition_values(condition))
            assert len(values) <= VALUES_PER_CONDITION, f"{rule.name}: {len(values)} values in one condition"
            total += len(values)
            for field, value in values:
                if field == "pathPattern":
                    assert PATH_PATTERN.fullmatch(value), f"{rule.name}: ELB refuses path pattern {value!r}"
                if field == "hostHeader":
                    assert HOST_PATTERN.fullmatch(value), f"{rule.name}: ELB refuses host {value!r}"
        assert total <= VALUES_PER_RULE, f"{rule.name}: {total} match evaluations in one rule"


def test_the_check_refuses_what_elb_refuses() -> None:
    """The control: the values release 0.3.0 declared for prod's closed admin, which ELB refuses."""
    assert not any(PATH_PATTERN.fullmatch(value) for value in ("/%*", "/a%*", "/admin%*"))
    assert PATH_PATTERN.fullmatch("/admin/*") and not PATH_PATTERN.fullmatch("/" + "a" * 128)
    assert HOST_PATTERN.fullmatch("pr-12.preview.example.com") and not HOST_PATTERN.fullmatch("localhost")


# --- KMS key policies --------------------------------------------------------------------------------

SOURCE_KEYS = ("aws:SourceAccount", "aws:SourceArn", "aws:SourceOrgID", "aws:SourceOrgPaths")


@pytest.mark.parametrize("run_name", STACKS)
def test_no_key_policy_asks_eventbridge_for_a_source_key_kms_never_sees(
    run_name: str, request: pytest.FixtureRequest
) -> None:
    """SNS developer guide, key management, "compatibility with AWS services": "Adding the
    aws:SourceAccount and aws:SourceArn to a AWS KMS policy is not supported for EventBridge-to-
    encrypted topics" — a statement for events.amazonaws.com under such a condition never matches."""
    run: ProgramRun = request.getfixturevalue(run_name)
    for key in run.of_type("aws:kms/key:Key"):
        for statement in json.loads(key.inputs["policy"])["Statement"]:
            if statement.get("Principal", {}).get("Service") == "events.amazonaws.com":
                conditions = json.dumps(statement.get("Condition", {}))
                assert not any(source in conditions for source in SOURCE_KEYS), statement


# --- CloudWatch metric math ------------------------------------------------------------------------

# CloudWatch user guide, "Metric math syntax and functions": numbers are decimal literals; the
# grammar has no exponent form (1.3824e+06).
NUMBER = re.compile(r"(?<![A-Za-z_])\d[\d.eE+\-]*")
DECIMAL = re.compile(r"\d+(\.\d+)?")
# The config bounds that make the largest and smallest literals: a pool of 64 processes that may
# wait a day for one-millisecond tasks, and one of a single process with day-long tasks.
EXTREME_POOLS = [
    {
        "name": "huge",
        "queues": ["default"],
        "concurrency": 64,
        "cpu": 256,
        "memory": 512,
        "minCount": 0,
        "maxCount": 50,
        "spot": True,
        "targetLatencySeconds": 86400,
        "taskSeconds": 0.001,
    },
    {
        "name": "tiny",
        "queues": ["email"],
        "concurrency": 1,
        "cpu": 256,
        "memory": 512,
        "minCount": 1,
        "maxCount": 1,
        "spot": True,
        "targetLatencySeconds": 86400,
        "taskSeconds": 86400,
    },
]


@pytest.fixture(scope="module")
def extreme_run() -> ProgramRun:
    # A class whose connections hold 50 tasks of 65 processes (infra/connection_budget.py).
    return run_program(
        "pr-791", {"ephemeral": True, "workerPools": EXTREME_POOLS, "dbInstanceClass": "db.r6g.8xlarge"}
    )


def math_literals(run: ProgramRun) -> Iterator[tuple[str, str]]:
    for alarm in run.of_type(ALARM):
        for query in alarm.inputs.get("metricQueries", []):
            for literal in NUMBER.findall(query.get("expression", "")):
                yield alarm.name, literal


@pytest.mark.parametrize("run_name", [*STACKS, "extreme_run"])
def test_every_metric_math_literal_is_a_plain_decimal(run_name: str, request: pytest.FixtureRequest) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    literals = list(math_literals(run))
    assert literals, f"{run.stack} declares no metric math"
    bad = [(alarm, literal) for alarm, literal in literals if not DECIMAL.fullmatch(literal)]
    assert bad == [], f"CloudWatch metric math reads decimal literals only: {bad}"


def test_the_extremes_reach_the_exponent_range(extreme_run: ProgramRun) -> None:
    """The control: these pools put a seven-digit number into an expression (`:g` wrote 1.3824e+06)."""
    assert any(len(literal.split(".")[0]) >= 7 for _alarm, literal in math_literals(extreme_run))


# --- WAF ---------------------------------------------------------------------------------------------


def statement_depth(statement: dict[str, Any]) -> int:
    nested = [
        *statement.get("andStatement", {}).get("statements", []),
        *statement.get("orStatement", {}).get("statements", []),
        *([statement["notStatement"]["statement"]] if "notStatement" in statement else []),
    ]
    return 1 + max((statement_depth(child) for child in nested), default=0)


@pytest.mark.parametrize("run_name", ["prod_run", "admin_networks_run"])
def test_web_acl_values_are_ones_waf_accepts(run_name: str, request: pytest.FixtureRequest) -> None:
    """botocore wafv2: EntityDescription and EntityName patterns, ResponseStatusCode 200-599; IP sets
    hold no /0 (WAF developer guide, IP set match); the provider's `rule` nests statements three
    levels deep at most (pulumi-aws `wafv2.WebAcl` rule_json: "to allow more than three nested
    statements")."""
    run: ProgramRun = request.getfixturevalue(run_name)
    model = botocore.session.get_session().get_service_model("wafv2")
    description = re.compile(model.shape_for("EntityDescription").metadata["pattern"])
    name = re.compile(model.shape_for("EntityName").metadata["pattern"])
    for acl in run.of_type("aws:wafv2/webAcl:WebAcl"):
        assert description.match(acl.inputs["description"]), acl.inputs["description"]
        for rule in acl.inputs["rules"]:
            assert name.match(rule["name"]) and name.match(rule["visibilityConfig"]["metricName"])
            assert statement_depth(rule["statement"]) <= 3, rule["name"]
            response = rule.get("action", {}).get("block", {}).get("customResponse")
            assert response is None or 200 <= response["responseCode"] <= 599
    for ip_set in run.of_type("aws:wafv2/ipSet:IpSet"):
        assert description.match(ip_set.inputs["description"])
        assert all(not address.endswith("/0") for address in ip_set.inputs["addresses"]), ip_set.inputs
