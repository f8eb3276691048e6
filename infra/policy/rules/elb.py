"""ELB: the application load balancer, its listeners and the WAF in front of it (Security Hub ELB
controls)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from pulumi_policy import PolicyResource

from .shared import (
    LISTENER,
    LOAD_BALANCER,
    WEB_ACL_ASSOCIATION,
    Props,
    Rule,
    as_list,
    of_type,
    resource_rule,
    stack_rule,
)

# ELB.17 accepts only these policies; the AWS default ELBSecurityPolicy-TLS13-1-2-2021-06 fails it.
MODERN_TLS_POLICIES = frozenset(
    {
        "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
        "ELBSecurityPolicy-TLS13-1-3-2021-06",
        "ELBSecurityPolicy-TLS13-1-2-Res-FIPS-2023-04",
        "ELBSecurityPolicy-TLS13-1-3-FIPS-2023-04",
        "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09",
        "ELBSecurityPolicy-TLS13-1-3-PQ-2025-09",
        "ELBSecurityPolicy-TLS13-1-2-Res-FIPS-PQ-2025-09",
        "ELBSecurityPolicy-TLS13-1-3-FIPS-PQ-2025-09",
    }
)


def redirects_to_https(listener: Props) -> bool:
    """The listener's only action redirects to HTTPS."""
    actions = as_list(listener.get("defaultActions"))
    return len(actions) == 1 and (actions[0].get("redirect") or {}).get("protocol") == "HTTPS"


def _drop_invalid_headers(lb: Props) -> Iterator[str]:
    if lb.get("dropInvalidHeaderFields") is not True:
        yield "dropInvalidHeaderFields must be true"


def _deletion_protection(lb: Props) -> Iterator[str]:
    if lb.get("enableDeletionProtection") is not True:
        yield "enableDeletionProtection must be true"


def _access_logs(lb: Props) -> Iterator[str]:
    if (lb.get("accessLogs") or {}).get("enabled") is not True:
        yield "accessLogs.enabled must be true (with an S3 bucket)"


def _modern_tls(listener: Props) -> Iterator[str]:
    if listener.get("protocol") == "HTTPS" and listener.get("sslPolicy") not in MODERN_TLS_POLICIES:
        yield f"sslPolicy {listener.get('sslPolicy')!r} is not a TLS 1.3 policy accepted by ELB.17"


def _http_redirects(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    listeners = of_type(resources, LISTENER)
    with_https = {
        lst.props.get("loadBalancerArn") for lst in listeners if lst.props.get("protocol") == "HTTPS"
    }
    for listener in listeners:
        if (
            listener.props.get("protocol") == "HTTP"
            and listener.props.get("loadBalancerArn") in with_https
            and not redirects_to_https(listener.props)
        ):
            yield listener.urn, "an HTTP listener beside an HTTPS one must only redirect to HTTPS"


def _behind_waf(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    protected = {
        association.props.get("resourceArn") for association in of_type(resources, WEB_ACL_ASSOCIATION)
    }
    for lb in of_type(resources, LOAD_BALANCER):
        if lb.props.get("arn") not in protected:
            yield lb.urn, "associate an AWS WAF web ACL with the load balancer (set wafEnabled)"


RULES: tuple[Rule, ...] = (
    resource_rule(
        "alb-drop-invalid-headers",
        "The ALB drops invalid HTTP headers",
        ["ELB.4"],
        [LOAD_BALANCER],
        _drop_invalid_headers,
    ),
    stack_rule(
        "alb-http-redirects-to-https",
        "HTTP redirects to HTTPS when a certificate is configured",
        ["ELB.1"],
        _http_redirects,
    ),
    resource_rule(
        "alb-modern-tls-policy",
        "HTTPS listeners use a TLS 1.3 security policy",
        ["ELB.17"],
        [LISTENER],
        _modern_tls,
    ),
    resource_rule(
        "alb-deletion-protection",
        "The ALB has deletion protection",
        ["ELB.6"],
        [LOAD_BALANCER],
        _deletion_protection,
        relaxable=True,
    ),
    resource_rule(
        "alb-access-logs",
        "The ALB writes access logs",
        ["ELB.5"],
        [LOAD_BALANCER],
        _access_logs,
        relaxable=True,
    ),
    stack_rule(
        "alb-waf",
        "An AWS WAF web ACL filters the ALB's requests",
        ["ELB.16"],
        _behind_waf,
        relaxable=True,
    ),
)
