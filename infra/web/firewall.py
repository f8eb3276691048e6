"""AWS WAF in front of the load balancer: a rate limit per client address, then AWS managed rules.

The rules, in the order WAF evaluates them (the first that blocks ends the evaluation):
1. `rate-limit`: more than `wafRateLimit` requests from one address within 5 minutes are blocked
   until its rate falls again. It comes first, so requests the other rules block count too.
2. `ip-reputation` (AWSManagedRulesAmazonIpReputationList): addresses Amazon threat intelligence
   knows as bots, scanners or attackers.
3. `common` (AWSManagedRulesCommonRuleSet): the OWASP-style core rules, except that
   SizeRestrictions_BODY only counts. It blocks every body over 8 KB, and the signup API accepts
   bodies up to 64 KiB; the app refuses larger ones itself (413), and WAF on a load balancer cannot
   inspect past the first 8 KB of a body anyway.
4. `known-bad-inputs` (AWSManagedRulesKnownBadInputsRuleSet): request patterns of known exploits
   (Log4j JNDI lookups, Java deserialization, ...).
Anything else is allowed. The load balancer's health checks go from the load balancer to the
targets, not through the listener, so WAF never sees them. Together the rules use about 930 of the
1,500 web ACL capacity units included in the base price.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from pulumi_aws.wafv2 import (
    WebAclRuleArgsDict,
    WebAclRuleStatementArgsDict,
    WebAclRuleVisibilityConfigArgsDict,
)
from pulumi_aws.wafv2 import (
    WebAclRuleStatementManagedRuleGroupStatementArgsDict as ManagedGroup,
)

from infra.web.config import FirewallConfig

RATE_LIMIT_WINDOW_SECONDS = 300
WEB_ACL_METRIC = "web-acl"  # the default action's metric (requests no rule decided on)
RATE_LIMIT_METRIC = "rate-limit"
# (metric name, AWS managed rule group, rules of the group that only count), in evaluation order.
MANAGED_RULE_GROUPS = (
    ("ip-reputation", "AWSManagedRulesAmazonIpReputationList", ()),
    ("common", "AWSManagedRulesCommonRuleSet", ("SizeRestrictions_BODY",)),
    ("known-bad-inputs", "AWSManagedRulesKnownBadInputsRuleSet", ()),
)
# Every rule's metric name (the `Rule` dimension of AWS/WAFV2 metrics), in evaluation order.
RULE_METRICS = (RATE_LIMIT_METRIC, *(metric for metric, _, _ in MANAGED_RULE_GROUPS))
# The metric names of the groups with rules that only count (their CountedRequests are worth a look).
COUNTING_RULE_METRICS = tuple(metric for metric, _, counted in MANAGED_RULE_GROUPS if counted)


def _visibility(metric: str) -> WebAclRuleVisibilityConfigArgsDict:
    return {"cloudwatch_metrics_enabled": True, "metric_name": metric, "sampled_requests_enabled": True}


def web_acl_rules(config: FirewallConfig) -> list[WebAclRuleArgsDict]:
    """The web ACL's rules, in the order of their priority."""
    rate_limit: WebAclRuleStatementArgsDict = {
        "rate_based_statement": {
            "limit": config.rate_limit,
            "aggregate_key_type": "IP",
            "evaluation_window_sec": RATE_LIMIT_WINDOW_SECONDS,
        }
    }
    rules: list[WebAclRuleArgsDict] = [
        {
            "name": RATE_LIMIT_METRIC,
            "priority": 0,
            "action": {"block": {}},
            "statement": rate_limit,
            "visibility_config": _visibility(RATE_LIMIT_METRIC),
        }
    ]
    for priority, (metric, group, counted) in enumerate(MANAGED_RULE_GROUPS, start=1):
        group_statement: ManagedGroup = {"vendor_name": "AWS", "name": group}
        if counted:
            group_statement["rule_action_overrides"] = [
                {"name": rule, "action_to_use": {"count": {}}} for rule in counted
            ]
        statement: WebAclRuleStatementArgsDict = {"managed_rule_group_statement": group_statement}
        rules.append(
            {
                "name": metric,
                "priority": priority,
                # The group's own actions apply (none: do not override them).
                "override_action": {"none": {}},
                "statement": statement,
                "visibility_config": _visibility(metric),
            }
        )
    return rules


@dataclass(frozen=True)
class WebFirewallArgs:
    config: FirewallConfig
    load_balancer_arn: pulumi.Input[str]


class WebFirewall(pulumi.ComponentResource):
    web_acl_name: pulumi.Output[str]  # the WebACL dimension of its CloudWatch metrics
    association: aws.wafv2.WebAclAssociation

    def __init__(self, name: str, args: WebFirewallArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("djcelery:index:WebFirewall", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        web_acl = aws.wafv2.WebAcl(
            f"{name}-acl",
            description="Rate limit per address and AWS managed rules in front of the web load balancer",
            scope="REGIONAL",
            default_action={"allow": {}},
            rules=web_acl_rules(args.config),
            visibility_config=_visibility(WEB_ACL_METRIC),
            opts=child,
        )
        self.association = aws.wafv2.WebAclAssociation(
            f"{name}-association",
            resource_arn=args.load_balancer_arn,
            web_acl_arn=web_acl.arn,
            opts=child,
        )
        self.web_acl_name = web_acl.name
        self.register_outputs({"web_acl_name": self.web_acl_name})
