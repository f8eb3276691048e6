"""The ELB rules (infra/policy/rules/elb.py): each fires on a realistic mistake in the load balancer,
its listeners or its web ACL association."""

from __future__ import annotations

import pytest

from infra.policy.rules import elb
from infra.policy.rules.shared import LOAD_BALANCER, WEB_ACL_ASSOCIATION
from tests.infra.policy.mistakes import (
    Baseline,
    Mistake,
    Runs,
    assert_every_rule_has_a_mistake,
    assert_fires_exactly_its_rule,
    drop,
    listener,
    only,
    set_to,
)

FORWARD_ACTIONS = [{"type": "forward", "targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:1:tg/web"}]

MISTAKES = [
    Mistake(
        "alb-drop-invalid-headers",
        "prod",
        only(LOAD_BALANCER),
        set_to("dropInvalidHeaderFields", False),
        "keeps invalid headers",
    ),
    Mistake(
        "alb-http-redirects-to-https",
        "ephemeral-https",
        listener("HTTP"),
        set_to("defaultActions", FORWARD_ACTIONS),
        "HTTP forwards",
    ),
    Mistake(
        "alb-modern-tls-policy",
        "prod-https",
        listener("HTTPS"),
        set_to("sslPolicy", "ELBSecurityPolicy-TLS13-1-2-2021-06"),
        "default TLS policy",
    ),
    Mistake(
        "alb-deletion-protection",
        "prod",
        only(LOAD_BALANCER),
        set_to("enableDeletionProtection", False),
        "unprotected",
    ),
    Mistake("alb-access-logs", "prod", only(LOAD_BALANCER), drop("accessLogs"), "no access logs"),
    Mistake(
        "alb-waf",
        "prod",
        only(WEB_ACL_ASSOCIATION),
        set_to("resourceArn", "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/x/1"),
        "web ACL on another load balancer",
    ),
]


def test_every_rule_has_a_mistake_that_fires_it() -> None:
    assert_every_rule_has_a_mistake(elb.RULES, MISTAKES)


@pytest.mark.parametrize("mistake", MISTAKES, ids=str)
def test_mistake_fires_exactly_its_rule(mistake: Mistake, runs: Runs, baseline: Baseline) -> None:
    assert_fires_exactly_its_rule(mistake, runs, baseline)
