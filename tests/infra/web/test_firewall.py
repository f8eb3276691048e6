"""AWS WAF on the load balancer: managed rule groups and a rate limit, associated with the ALB
before web serves; the signup API's bodies are not blocked by it. (The target group's health
checks go from the load balancer to the tasks, not through a listener: WAF never sees them.)"""

import re
from pathlib import Path

import pytest

from infra.stack import validate
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


def test_the_admin_rule_comes_first_then_the_rate_limit_then_the_managed_groups(prod_run: ProgramRun) -> None:
    declared = rules(prod_run)
    assert [rule["name"] for rule in declared] == list(RULE_METRICS)
    assert [rule["visibilityConfig"]["metricName"] for rule in declared] == list(RULE_METRICS)
    admin, rate, *managed = declared
    assert admin["action"] == {"block": {"customResponse": {"responseCode": 404}}}, (
        "as the listener rules answer"
    )
    assert rate["action"] == {"block": {}}
    assert rate["statement"]["rateBasedStatement"] == {
        "limit": 2000,
        "aggregateKeyType": "IP",
        "evaluationWindowSec": 300,
    }
    groups = [rule["statement"]["managedRuleGroupStatement"] for rule in managed]
    assert [(group["vendorName"], group["name"]) for group in groups] == [
        ("AWS", name) for _, name, _ in MANAGED_RULE_GROUPS
    ]
    assert all(rule["overrideAction"] == {"none": {}} for rule in managed)


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


@pytest.fixture(scope="module")
def admin_networks_run() -> ProgramRun:
    """WAF on, and the admin open to all of IPv4 (an allowed /0) and one IPv6 network."""
    return run_program(
        "pr-789", {"ephemeral": True, "wafEnabled": True, "adminAllowedCidrs": ["0.0.0.0/0", "2001:db8::/32"]}
    )


def test_the_admin_rule_lets_the_allowed_networks_through_as_ip_sets(admin_networks_run: ProgramRun) -> None:
    """WAF supports "all IPv4 and IPv6 CIDR ranges except for /0" (WAF developer guide, IP set
    match): an allowed /0 is its two /1 halves; one IP set per address family."""
    sets = {
        ip_set.inputs["ipAddressVersion"]: ip_set
        for ip_set in admin_networks_run.of_type("aws:wafv2/ipSet:IpSet")
    }
    assert sorted(sets["IPV4"].inputs["addresses"]) == ["0.0.0.0/1", "128.0.0.0/1"]
    assert sets["IPV6"].inputs["addresses"] == ["2001:db8::/32"]
    [admin] = [rule for rule in rules(admin_networks_run) if rule["name"] == "admin"]
    path, *outside = admin["statement"]["andStatement"]["statements"]
    assert path["byteMatchStatement"]["searchString"] == "/admin"
    assert sorted(
        statement["notStatement"]["statement"]["ipSetReferenceStatement"]["arn"] for statement in outside
    ) == sorted(ip_set.state["arn"] for ip_set in sets.values()), (
        "blocked unless from one of the allowed sets"
    )


def test_an_open_admin_has_no_admin_rule(custom_run: ProgramRun) -> None:
    waf = run_program("pr-790", {"ephemeral": True, "wafEnabled": True})
    assert "admin" not in [rule["name"] for rule in rules(waf)], "0.0.0.0/0 with ::/0 is open to everyone"


def test_the_firewall_logs_every_decision_to_an_encrypted_log_group(prod_run: ProgramRun) -> None:
    """WAF delivers to CloudWatch Logs only into a log group named `aws-waf-logs-...` (WAF developer
    guide, "Sending web ACL traffic logs to an Amazon CloudWatch Logs log group")."""
    logging = prod_run.one("aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration").inputs
    group = prod_run.one("aws:cloudwatch/logGroup:LogGroup", "waf-logs")
    assert group.inputs["name"].startswith("aws-waf-logs-")
    assert logging["logDestinationConfigs"] == [group.state["arn"]]
    assert logging["resourceArn"] == prod_run.one(WEB_ACL).state["arn"]
    key = prod_run.one("aws:kms/key:Key").state["arn"]
    assert group.inputs["kmsKeyId"] == key, "prod encrypts its logs with the stack's key"
    assert group.inputs["retentionInDays"] == validate(prod_run.config).logs.retention_days
