"""The pack: every area's rules in one list, and the policy config of each stack tier.

Relaxable rules are advisory in dev and ephemeral stacks and mandatory in prod; every other rule
is mandatory everywhere. `enforcement_config(tier)` is the content of `infra/policy/<tier>.json`,
which `pulumi preview/up --policy-pack-config` reads; regenerate the files after changing a rule
(a test fails while they differ):

    .venv/bin/python -m infra.policy.rules.pack
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy

from . import cloudwatch, ecr, ecs, elasticache, elb, iam, kms, network, rds, s3, tiers
from .shared import Rule
from .tiers import TIERS, Tier

POLICY_DIR = Path(__file__).resolve().parents[1]
# One module per AWS area (pulumi-policy-aws's layout), then the rules of one tier.
AREAS = (rds, elasticache, ecs, ecr, elb, network, iam, cloudwatch, kms, s3, tiers)
RULES: tuple[Rule, ...] = tuple(rule for area in AREAS for rule in area.RULES)
RELAXABLE_RULES = frozenset(rule.name for rule in RULES if rule.relaxable)
TIER_RULES = tuple(rule.name for rule in tiers.RULES)


def policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    return [rule.policy for rule in RULES]


def enforcement_config(tier: Tier) -> dict[str, Any]:
    """The policy config for a stack tier: the content of `infra/policy/<tier>.json`."""
    config: dict[str, Any] = {"all": EnforcementLevel.MANDATORY.value}
    if tier != "prod":
        config.update({name: EnforcementLevel.ADVISORY.value for name in sorted(RELAXABLE_RULES)})
    for name in TIER_RULES:
        config[name] = {"enforcementLevel": EnforcementLevel.MANDATORY.value, "tier": tier}
    return config


def write_enforcement_configs() -> None:
    """Regenerates infra/policy/<tier>.json from the rules."""
    for tier in TIERS:
        text = json.dumps(enforcement_config(tier), indent=2) + "\n"
        (POLICY_DIR / f"{tier}.json").write_text(text)


if __name__ == "__main__":
    write_enforcement_configs()
