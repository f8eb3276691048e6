"""The RDS rules (infra/policy/rules/rds.py): each fires on a realistic mistake in the database."""

from __future__ import annotations

import pytest

from infra.policy.rules import rds
from infra.policy.rules.shared import RDS_INSTANCE, RDS_PARAMETER_GROUP
from tests.infra.policy.mistakes import (
    Baseline,
    Mistake,
    Runs,
    assert_every_rule_has_a_mistake,
    assert_fires_exactly_its_rule,
    drop,
    only,
    set_parameter,
    set_to,
)

MISTAKES = [
    Mistake(
        "rds-storage-encrypted", "prod", only(RDS_INSTANCE), set_to("storageEncrypted", False), "unencrypted"
    ),
    Mistake("rds-not-public", "prod", only(RDS_INSTANCE), set_to("publiclyAccessible", True), "public"),
    Mistake(
        "rds-force-ssl", "prod", only(RDS_PARAMETER_GROUP), set_parameter("rds.force_ssl", "0"), "ssl off"
    ),
    Mistake(
        "rds-force-ssl",
        "prod",
        only(RDS_INSTANCE),
        set_to("parameterGroupName", "default.postgres17"),
        "default parameter group",
    ),
    # Ephemeral stacks keep 1 day, so the 7-day rule already reports them and only this one is new.
    Mistake(
        "rds-backups-enabled",
        "ephemeral",
        only(RDS_INSTANCE),
        set_to("backupRetentionPeriod", 0),
        "no backups",
    ),
    Mistake(
        "rds-backup-retention-7-days",
        "prod",
        only(RDS_INSTANCE),
        set_to("backupRetentionPeriod", 3),
        "3 days",
    ),
    Mistake(
        "rds-auto-minor-version-upgrade",
        "prod",
        only(RDS_INSTANCE),
        set_to("autoMinorVersionUpgrade", False),
        "no minor upgrades",
    ),
    Mistake(
        "rds-deletion-protection",
        "prod",
        only(RDS_INSTANCE),
        set_to("deletionProtection", False),
        "unprotected",
    ),
    Mistake("rds-multi-az", "prod", only(RDS_INSTANCE), set_to("multiAz", False), "single AZ"),
    Mistake(
        "rds-performance-insights",
        "prod",
        only(RDS_INSTANCE),
        set_to("performanceInsightsEnabled", False),
        "off",
    ),
    Mistake(
        "rds-performance-insights",
        "prod",
        only(RDS_INSTANCE),
        drop("performanceInsightsKmsKeyId"),
        "insights on the AWS key",
    ),
    Mistake("rds-enhanced-monitoring", "prod", only(RDS_INSTANCE), set_to("monitoringInterval", 0), "off"),
]


def test_every_rule_has_a_mistake_that_fires_it() -> None:
    assert_every_rule_has_a_mistake(rds.RULES, MISTAKES)


@pytest.mark.parametrize("mistake", MISTAKES, ids=str)
def test_mistake_fires_exactly_its_rule(mistake: Mistake, runs: Runs, baseline: Baseline) -> None:
    assert_fires_exactly_its_rule(mistake, runs, baseline)
