"""RDS: the PostgreSQL database (Security Hub RDS controls)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from pulumi_policy import PolicyResource

from .shared import (
    RDS_INSTANCE,
    RDS_PARAMETER_GROUP,
    Props,
    Rule,
    is_present,
    parameter_required,
    resource_rule,
    stack_rule,
)

LONG_RDS_BACKUP_DAYS = 7
# The RDS Enhanced Monitoring intervals that collect metrics (0 turns it off).
MONITORING_INTERVALS = frozenset({1, 5, 10, 15, 30, 60})


def _storage_encrypted(db: Props) -> Iterator[str]:
    if db.get("storageEncrypted") is not True:
        yield "storageEncrypted must be true"


def _not_public(db: Props) -> Iterator[str]:
    if db.get("publiclyAccessible") is True:
        yield "publiclyAccessible must be false"


def _backups_on(db: Props) -> Iterator[str]:
    if (db.get("backupRetentionPeriod") or 0) < 1:
        yield "backupRetentionPeriod must be at least 1 day (0 or unset turns automated backups off)"


def _long_backups(db: Props) -> Iterator[str]:
    if (db.get("backupRetentionPeriod") or 0) < LONG_RDS_BACKUP_DAYS:
        yield f"backupRetentionPeriod must be at least {LONG_RDS_BACKUP_DAYS} days"


def _minor_upgrades(db: Props) -> Iterator[str]:
    # The provider default is true, so only an explicit false fails.
    if db.get("autoMinorVersionUpgrade") is False:
        yield "autoMinorVersionUpgrade must not be false"


def _deletion_protection(db: Props) -> Iterator[str]:
    if db.get("deletionProtection") is not True:
        yield "deletionProtection must be true"


def _multi_az(db: Props) -> Iterator[str]:
    if db.get("multiAz") is not True:
        yield "multiAz must be true"


def _force_ssl(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    yield from parameter_required(
        resources, RDS_INSTANCE, RDS_PARAMETER_GROUP, "rds.force_ssl", "1", "TLS for every connection"
    )


def _performance_insights(db: Props) -> Iterator[str]:
    if db.get("performanceInsightsEnabled") is not True:
        yield "performanceInsightsEnabled must be true"
    elif db.get("kmsKeyId") and db.get("performanceInsightsKmsKeyId") != db.get("kmsKeyId"):
        yield "performanceInsightsKmsKeyId must be the key that encrypts the storage"


def _enhanced_monitoring(db: Props) -> Iterator[str]:
    if db.get("monitoringInterval") not in MONITORING_INTERVALS:
        yield f"monitoringInterval must be one of {sorted(MONITORING_INTERVALS)}"
    if not is_present(db, "monitoringRoleArn"):
        yield "monitoringRoleArn must name the role RDS publishes the metrics with"


RULES: tuple[Rule, ...] = (
    resource_rule(
        "rds-storage-encrypted",
        "RDS storage is encrypted at rest",
        ["RDS.3"],
        [RDS_INSTANCE],
        _storage_encrypted,
    ),
    resource_rule("rds-not-public", "RDS is not publicly accessible", ["RDS.2"], [RDS_INSTANCE], _not_public),
    stack_rule("rds-force-ssl", "RDS PostgreSQL refuses connections without TLS", ["RDS.38"], _force_ssl),
    resource_rule(
        "rds-backups-enabled", "RDS automated backups are on", ["RDS.11"], [RDS_INSTANCE], _backups_on
    ),
    resource_rule(
        "rds-backup-retention-7-days",
        "RDS keeps automated backups for at least 7 days",
        ["RDS.11"],
        [RDS_INSTANCE],
        _long_backups,
        relaxable=True,
    ),
    resource_rule(
        "rds-auto-minor-version-upgrade",
        "RDS applies minor engine upgrades automatically",
        ["RDS.13"],
        [RDS_INSTANCE],
        _minor_upgrades,
    ),
    resource_rule(
        "rds-deletion-protection",
        "RDS has deletion protection",
        ["RDS.8"],
        [RDS_INSTANCE],
        _deletion_protection,
        relaxable=True,
    ),
    resource_rule("rds-multi-az", "RDS runs Multi-AZ", ["RDS.5"], [RDS_INSTANCE], _multi_az, relaxable=True),
    resource_rule(
        "rds-performance-insights",
        "RDS Performance Insights is on, encrypted with the storage's key",
        [],
        [RDS_INSTANCE],
        _performance_insights,
        relaxable=True,
    ),
    resource_rule(
        "rds-enhanced-monitoring",
        "RDS Enhanced Monitoring is on",
        ["RDS.6"],
        [RDS_INSTANCE],
        _enhanced_monitoring,
        relaxable=True,
    ),
)
