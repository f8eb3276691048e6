"""Who may reach the Django admin: listener rules on the listener that serves the app, the first fence.

Requests for the admin from the stack's `adminAllowedCidrs` are forwarded to the app (one rule per
group of networks: a rule holds at most five condition values, three per condition); every other
request for `/admin` or `/admin/*` gets a 404 from the load balancer, before it reaches the app. An
empty list closes the admin to everyone; `0.0.0.0/0` with `::/0` leaves it open and declares no rules.

The load balancer matches the path as the client sent it, and ELB accepts only plain characters in a
path pattern (no `%`: ELBv2 `RuleCondition.Values`), while gunicorn percent-decodes the path before
Django routes it, so `/%61dmin/` passes these rules. Where the path is decoded, two more fences
close it: the WAF rule of the firewall (URL-decoded, lower-cased path, when WAF is on) and the app,
which checks the client address of every admin request against ADMIN_ALLOWED_CIDRS after decoding.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from infra.app_contract import ADMIN_PATH

VALUES_PER_CONDITION = 3  # ALB quota: comparison strings per condition
ALLOW_PRIORITY = 100  # the first allow rule; one per group of networks, each one lower in priority
DENY_PRIORITY = 200  # after every allow rule (20 networks make 7 of them)
NOT_FOUND = aws.lb.ListenerRuleActionArgs(
    type="fixed-response",
    fixed_response=aws.lb.ListenerRuleActionFixedResponseArgs(
        content_type="text/plain", message_body="Not Found", status_code="404"
    ),
)


def admin_paths(admin_path: str = ADMIN_PATH) -> tuple[str, ...]:
    """The path patterns of the admin: `/admin` (Django redirects it) and everything under `/admin/`."""
    return (admin_path.rstrip("/"), f"{admin_path}*")


def in_groups(values: Sequence[str], size: int = VALUES_PER_CONDITION) -> list[tuple[str, ...]]:
    return [tuple(values[start : start + size]) for start in range(0, len(values), size)]


def admin_rules(
    name: str,
    listener: aws.lb.Listener,
    target_group_arn: pulumi.Input[str],
    allowed_cidrs: Sequence[str],
    opts: pulumi.ResourceOptions,
) -> list[aws.lb.ListenerRule]:
    """Allow rules for the allowed networks, then 404 rules for everyone else."""
    forward = aws.lb.ListenerRuleActionArgs(type="forward", target_group_arn=target_group_arn)
    rules = [
        aws.lb.ListenerRule(
            f"{name}-admin-allow-{index}",
            listener_arn=listener.arn,
            priority=ALLOW_PRIORITY + index,
            conditions=[
                aws.lb.ListenerRuleConditionArgs(
                    path_pattern=aws.lb.ListenerRuleConditionPathPatternArgs(values=list(admin_paths()))
                ),
                aws.lb.ListenerRuleConditionArgs(
                    source_ip=aws.lb.ListenerRuleConditionSourceIpArgs(values=list(networks))
                ),
            ],
            actions=[forward],
            opts=opts,
        )
        for index, networks in enumerate(in_groups(allowed_cidrs))
    ]
    rules += [
        aws.lb.ListenerRule(
            f"{name}-admin-deny-{index}",
            listener_arn=listener.arn,
            priority=DENY_PRIORITY + index,
            conditions=[
                aws.lb.ListenerRuleConditionArgs(
                    path_pattern=aws.lb.ListenerRuleConditionPathPatternArgs(values=list(paths))
                )
            ],
            actions=[NOT_FOUND],
            opts=opts,
        )
        for index, paths in enumerate(in_groups(admin_paths()))
    ]
    return rules
