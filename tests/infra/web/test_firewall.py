"""AWS WAF on the load balancer: managed rule groups and a rate limit, associated with the ALB
before web serves; the signup API's bodies are not blocked by it. (The target group's health
checks go from the load balancer to the tasks, not through a listener: WAF never sees them.)"""

import re
from pathlib import Path

import pytest

from infra.web.firewall import MANAGED_RULE_GROUPS, RULE_METRICS
from testkit.program import ProgramRun, run_program

WEB_ACL = "aws:wafv2/webAcl:WebAcl"
ASSOCIATION = "aws:wafv2/webAclAssociation:WebAclAssociation"
SETTINGS = Path(__file__).resolve().parents[3] / "app" / "config" / "settings" / "base.py"
# WAF on an ALB sees the first 8 KB of a body; SizeRestrictions_BODY blocks anything larger.
WAF_BODY_LIMIT = 8 * 1024


def rules(run: ProgramRun) -> list[dict]:
    return sorted(run.one(WEB_ACL).inputs["rules"], key=lambda rule: rule["priority"])


def test_prod_filters_every_request_of_its_load_balancer(prod_run: ProgramRun) -> None:
    acl = prod_run.one(WEB_ACL)
    assert acl.inputs["scope"] == "REGIONAL"
    assert acl.inputs["defaultAction"] == {"allow": {}}
    association = prod_run.one(ASSOCIATION).inputs
    assert association["resourceArn"] == prod_run.one("aws:lb/loadBalancer:LoadBalancer").state["arn"]
    assert association["webAclArn"] == acl.state["arn"]
    web = prod_run.one("aws:ecs/service:Service", "web-service")
    assert prod_run.one(ASSOCIATION).urn in web.dependencies, "web serves only behind the firewall"


def test_the_rate_limit_comes_first_then_the_managed_groups(prod_run: ProgramRun) -> None:
    declared = rules(prod_run)
    assert [rule["name"] for rule in declared] == list(RULE_METRICS)
    assert [rule["visibilityConfig"]["metricName"] for rule in declared] == list(RULE_METRICS)
    rate = declared[0]
    assert rate["action"] == {"block": {}}
    assert rate["statement"]["rateBasedStatement"] == {
        "limit": 2000,
        "aggregateKeyType": "IP",
        "evaluationWindowSec": 300,
    }
    groups = [rule["statement"]["managedRuleGroupStatement"] for rule in declared[1:]]
    assert [(group["vendorName"], group["name"]) for group in groups] == [
        ("AWS", name) for _, name, _ in MANAGED_RULE_GROUPS
    ]
    assert all(rule["overrideAction"] == {"none": {}} for rule in declared[1:])


def test_signup_bodies_up_to_the_apps_own_limit_are_not_blocked(prod_run: ProgramRun) -> None:
    """The app accepts bodies up to DATA_UPLOAD_MAX_MEMORY_SIZE (64 KiB) and answers 413 beyond;
    the core rule set's SizeRestrictions_BODY would block everything over 8 KB."""
    match = re.search(r"^DATA_UPLOAD_MAX_MEMORY_SIZE = (\d+) \* (\d+)$", SETTINGS.read_text(), re.MULTILINE)
    assert match, f"{SETTINGS} no longer sets DATA_UPLOAD_MAX_MEMORY_SIZE as a product"
    app_limit = int(match.group(1)) * int(match.group(2))
    [common] = [rule for rule in rules(prod_run) if rule["name"] == "common"]
    overrides = common["statement"]["managedRuleGroupStatement"].get("ruleActionOverrides", [])
    counted = {override["name"] for override in overrides if override["actionToUse"] == {"count": {}}}
    assert app_limit > WAF_BODY_LIMIT, "with an app limit under 8 KB the override could go"
    assert counted == {"SizeRestrictions_BODY"}, "every other core rule keeps blocking"


@pytest.mark.parametrize("run_name", ["dev_run", "ephemeral_run", "custom_run"])
def test_waf_is_off_unless_the_stack_turns_it_on(run_name: str, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    assert run.of_type(WEB_ACL) == [] and run.of_type(ASSOCIATION) == []


def test_the_rate_limit_follows_the_stack_config() -> None:
    run = run_program("pr-8", {"ephemeral": True, "wafEnabled": True, "wafRateLimit": 300})
    assert rules(run)[0]["statement"]["rateBasedStatement"]["limit"] == 300
