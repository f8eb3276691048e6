"""AWS WAF in front of the load balancer: who reaches the admin, a rate limit per client address,
then AWS managed rules, every decision logged.

The rules, in the order WAF evaluates them (the first that blocks ends the evaluation):
0. `admin` (only while the admin is not open to everyone): a request whose path, URL-decoded and
   lower-cased as gunicorn and Django will see it, starts with `/admin` gets a 404 unless it comes
   from `adminAllowedCidrs` (an IP set per address family; WAF accepts no /0 range, so an allowed
   /0 is written as its two /1 halves). It closes what the listener rules cannot: ELB matches the raw
   path, so `/%61dmin/` passes them.
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
targets, not through the listener, so WAF never sees them. Together the rules use about 950 of the
1,500 web ACL capacity units included in the base price.

WAF logs every request it sees to a CloudWatch log group named `aws-waf-logs-<stack>` (WAF accepts
only log groups whose name starts with `aws-waf-logs-`), encrypted with the stack's key when it has
one and kept for the stack's log retention.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
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

from infra.app_contract import ADMIN_PATH
from infra.web.config import FirewallConfig

ADMIN_METRIC = "admin"
# What WAF does to a path before comparing it: the decoding gunicorn does, then one case, so
# `/%41DMIN/` is `/admin/` (WAF TextTransformationType URL_DECODE, LOWERCASE; lower priority first).
ADMIN_PATH_TRANSFORMATIONS = ("URL_DECODE", "LOWERCASE")
NOT_FOUND_STATUS = 404
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
RULE_METRICS = (ADMIN_METRIC, RATE_LIMIT_METRIC, *(metric for metric, _, _ in MANAGED_RULE_GROUPS))
# The metric names of the groups with rules that only count (their CountedRequests are worth a look).
COUNTING_RULE_METRICS = tuple(metric for metric, _, counted in MANAGED_RULE_GROUPS if counted)


def _visibility(metric: str) -> WebAclRuleVisibilityConfigArgsDict:
    return {"cloudwatch_metrics_enabled": True, "metric_name": metric, "sampled_requests_enabled": True}


def waf_ranges(cidrs: Sequence[str], version: int) -> list[str]:
    """The networks of one address family as an IP set holds them: WAF supports "all IPv4 and IPv6
    CIDR ranges except for /0" (WAF developer guide, IP set match), so a /0 becomes its two halves."""
    ranges: list[str] = []
    for cidr in cidrs:
        network = ipaddress.ip_network(cidr)
        if network.version == version:
            halves = network.subnets(new_prefix=1) if network.prefixlen == 0 else [network]
            ranges += [str(half) for half in halves]
    return ranges


def admin_statement(ip_set_arns: Sequence[pulumi.Input[str]]) -> WebAclRuleStatementArgsDict:
    """The admin path, decoded, from an address in none of the allowed IP sets: `path AND NOT set1
    AND NOT set2` (three levels of nested statements, what the provider's `rule` holds)."""
    path: WebAclRuleStatementArgsDict = {
        "byte_match_statement": {
            "field_to_match": {"uri_path": {}},
            "positional_constraint": "STARTS_WITH",
            "search_string": ADMIN_PATH.rstrip("/"),
            "text_transformations": [
                {"priority": priority, "type": transformation}
                for priority, transformation in enumerate(ADMIN_PATH_TRANSFORMATIONS)
            ],
        }
    }
    outside: list[WebAclRuleStatementArgsDict] = [
        {"not_statement": {"statement": {"ip_set_reference_statement": {"arn": arn}}}} for arn in ip_set_arns
    ]
    return {"and_statement": {"statements": [path, *outside]}} if outside else path


def web_acl_rules(
    config: FirewallConfig, admin_ip_set_arns: Sequence[pulumi.Input[str]] | None = None
) -> list[WebAclRuleArgsDict]:
    """The web ACL's rules, in the order of their priority; the admin rule unless `admin_ip_set_arns`
    is None (the admin is open to everyone)."""
    rules: list[WebAclRuleArgsDict] = []
    if admin_ip_set_arns is not None:
        rules.append(
            {
                "name": ADMIN_METRIC,
                "priority": 0,
                "action": {"block": {"custom_response": {"response_code": NOT_FOUND_STATUS}}},
                "statement": admin_statement(admin_ip_set_arns),
                "visibility_config": _visibility(ADMIN_METRIC),
            }
        )
    rate_limit: WebAclRuleStatementArgsDict = {
        "rate_based_statement": {
            "limit": config.rate_limit,
            "aggregate_key_type": "IP",
            "evaluation_window_sec": RATE_LIMIT_WINDOW_SECONDS,
        }
    }
    rules.append(
        {
            "name": RATE_LIMIT_METRIC,
            "priority": 1,
            "action": {"block": {}},
            "statement": rate_limit,
            "visibility_config": _visibility(RATE_LIMIT_METRIC),
        }
    )
    for priority, (metric, group, counted) in enumerate(MANAGED_RULE_GROUPS, start=2):
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
    # Networks that reach the admin; None: open to everyone (no admin rule).
    admin_allowed_cidrs: tuple[str, ...] | None
    log_group_name: str  # aws-waf-logs-<stack>
    log_retention_days: int
    key_arn: pulumi.Input[str] | None = None  # the stack's KMS key for the log group


class WebFirewall(pulumi.ComponentResource):
    web_acl_name: pulumi.Output[str]  # the WebACL dimension of its CloudWatch metrics
    association: aws.wafv2.WebAclAssociation

    def __init__(self, name: str, args: WebFirewallArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("djcelery:index:WebFirewall", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        admin = (
            None if args.admin_allowed_cidrs is None else self._admin_ip_sets(name, args.admin_allowed_cidrs)
        )
        web_acl = aws.wafv2.WebAcl(
            f"{name}-acl",
            description="Admin networks, rate limit per address and AWS managed rules for the web ALB",
            scope="REGIONAL",
            default_action={"allow": {}},
            rules=web_acl_rules(args.config, admin),
            visibility_config=_visibility(WEB_ACL_METRIC),
            opts=child,
        )
        self._logging(name, args, web_acl)
        self.association = aws.wafv2.WebAclAssociation(
            f"{name}-association",
            resource_arn=args.load_balancer_arn,
            web_acl_arn=web_acl.arn,
            opts=child,
        )
        self.web_acl_name = web_acl.name
        self.register_outputs({"web_acl_name": self.web_acl_name})

    def _admin_ip_sets(self, name: str, cidrs: tuple[str, ...]) -> list[pulumi.Output[str]]:
        """One IP set per address family that has allowed networks."""
        return [
            aws.wafv2.IpSet(
                f"{name}-admin-ipv{version}",
                description="Networks that may reach the Django admin, from adminAllowedCidrs",
                scope="REGIONAL",
                ip_address_version=f"IPV{version}",
                addresses=ranges,
                opts=pulumi.ResourceOptions(parent=self),
            ).arn
            for version in (4, 6)
            if (ranges := waf_ranges(cidrs, version))
        ]

    def _logging(self, name: str, args: WebFirewallArgs, web_acl: aws.wafv2.WebAcl) -> None:
        """Every request WAF evaluates, to an encrypted log group kept for the stack's retention."""
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=args.log_group_name,
            retention_in_days=args.log_retention_days,
            kms_key_id=args.key_arn,
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.wafv2.WebAclLoggingConfiguration(
            f"{name}-logging",
            resource_arn=web_acl.arn,
            log_destination_configs=[log_group.arn],
            opts=pulumi.ResourceOptions(parent=self),
        )
