"""The pack as a whole (infra/policy/rules/pack.py) on the program's real dev, prod and ephemeral runs.

Every stack passes every rule that is mandatory for its tier; the committed tier files, the docs
and the area modules agree with the rules. Each area's own test module makes each of its rules fire.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra.policy.rules.pack import AREAS, RELAXABLE_RULES, RULES, enforcement_config
from infra.policy.rules.shared import (
    CACHE_PARAMETER_GROUP,
    ECR_LIFECYCLE_POLICY,
    ECR_REPOSITORY,
    ECS_CLUSTER,
    ECS_SERVICE,
    LISTENER,
    LOAD_BALANCER,
    LOG_GROUP,
    RDS_INSTANCE,
    RDS_PARAMETER_GROUP,
    REPLICATION_GROUP,
    S3_BUCKET,
    SECURITY_GROUP,
    TASK_DEFINITION,
)
from infra.policy.rules.tiers import TIERS, Tier
from tests.infra.policy.mistakes import TIER_OF_RUN, Baseline, Runs, listing
from tests.infra.policy.policy_bridge import POLICY_DIR, tier_config

# The resource types the rules are about; a stack without them would pass vacuously.
CHECKED_TYPES = (
    RDS_INSTANCE,
    RDS_PARAMETER_GROUP,
    REPLICATION_GROUP,
    CACHE_PARAMETER_GROUP,
    TASK_DEFINITION,
    ECS_SERVICE,
    ECR_REPOSITORY,
    ECR_LIFECYCLE_POLICY,
    LOAD_BALANCER,
    LISTENER,
    SECURITY_GROUP,
    LOG_GROUP,
    S3_BUCKET,
    ECS_CLUSTER,
)
DOCS = Path(__file__).resolve().parents[3] / "docs" / "policy.md"
RULES_DIR = POLICY_DIR / "rules"
NOT_AREAS = {"__init__", "shared", "pack"}


# --- The tier config ----------------------------------------------------------------------------


@pytest.mark.parametrize("tier", TIERS)
def test_committed_tier_config_matches_the_rules(tier: Tier) -> None:
    assert tier_config(tier) == enforcement_config(tier), (
        f"infra/policy/{tier}.json is out of date with the rules in infra/policy/rules/; "
        "regenerate it with `.venv/bin/python -m infra.policy.rules.pack`"
    )


def test_only_cost_and_teardown_rules_are_relaxed_outside_prod() -> None:
    assert {
        "rds-multi-az",
        "elasticache-automatic-failover",
        "rds-deletion-protection",
        "alb-deletion-protection",
        "rds-backup-retention-7-days",
        "alb-access-logs",
        "alb-waf",
        "customer-managed-key",
        "s3-versioning",
        "rds-performance-insights",
        "rds-enhanced-monitoring",
    } == RELAXABLE_RULES, (
        "relax only Multi-AZ, deletion protection, long backups, access logs, WAF, the stack's own key, "
        "media versions and database insight: they cost money or block teardown"
    )
    prod = tier_config("prod")
    assert prod["all"] == "mandatory"
    assert not [name for name, entry in prod.items() if entry == "advisory"], "prod relaxes nothing"
    for tier in ("dev", "ephemeral"):
        advisory = {name for name, entry in tier_config(tier).items() if entry == "advisory"}
        assert advisory == RELAXABLE_RULES, f"{tier}.json relaxes {sorted(advisory)}"


def test_docs_list_every_rule_with_its_controls_and_relaxation() -> None:
    text = DOCS.read_text()
    for rule in RULES:
        row = re.search(rf"^\| `{re.escape(rule.name)}` \|(.*)$", text, re.MULTILINE)
        assert row, f"docs/policy.md has no table row for rule {rule.name}"
        cells = [cell.strip() for cell in row.group(1).split("|")]
        for control in rule.controls:
            assert control in cells[1], f"docs/policy.md: row of {rule.name} does not name {control}"
        relaxed = cells[2] == "advisory"
        assert relaxed == rule.relaxable, f"docs/policy.md: dev/ephemeral column of {rule.name} is wrong"


# --- The areas ----------------------------------------------------------------------------------


def test_every_area_module_is_in_the_pack_and_has_its_test_module() -> None:
    modules = {path.stem for path in RULES_DIR.glob("*.py")} - NOT_AREAS
    assert modules == {area.__name__.rsplit(".", 1)[-1] for area in AREAS}, (
        "pack.AREAS must list every area module"
    )
    untested = [
        name for name in sorted(modules) if not Path(__file__).with_name(f"test_{name}_rules.py").exists()
    ]
    assert not untested, f"areas without a test module that makes each rule fire: {untested}"
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names)), "two rules share a name"


# --- The program's stacks pass ------------------------------------------------------------------


# A preview base runs no app; a thin preview owns only its tasks, services, logs and secrets.
CHECKED_TYPES_OF_RUN = {
    "preview-base": tuple(t for t in CHECKED_TYPES if t not in {TASK_DEFINITION, ECS_SERVICE, S3_BUCKET}),
    "preview": (TASK_DEFINITION, ECS_SERVICE, LOG_GROUP),
}


@pytest.mark.parametrize("name", TIER_OF_RUN)
def test_stack_has_no_mandatory_violation(name: str, runs: Runs, baseline: Baseline) -> None:
    missing = [t for t in CHECKED_TYPES_OF_RUN.get(name, CHECKED_TYPES) if not runs[name].of_type(t)]
    assert not missing, f"the {name} stack declares no {missing}: zero violations would prove nothing"
    blocking = [violation for violation in baseline[name] if violation.level == "mandatory"]
    assert not blocking, f"`pulumi preview` of the {name} stack would fail:\n{listing(blocking)}"


@pytest.mark.parametrize("name", ["prod", "prod-https"])
def test_prod_has_no_advisory_violation_either(name: str, baseline: Baseline) -> None:
    assert not baseline[name], f"{name} violates:\n{listing(baseline[name])}"
