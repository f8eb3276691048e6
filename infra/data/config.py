"""Database and broker settings of a stack."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from infra.config.reader import ConfigReader

POSTGRES_MAJOR_VERSIONS = (13, 14, 15, 16, 17)
CacheEngine = Literal["redis", "valkey"]
CACHE_ENGINES: tuple[CacheEngine, ...] = ("redis", "valkey")
# ElastiCache engine -> major versions with a known parameter group family.
CACHE_ENGINE_MAJOR_VERSIONS: dict[CacheEngine, tuple[int, ...]] = {"redis": (6, 7), "valkey": (7, 8)}
CELERY_CANNOT_USE_CLUSTER = (
    "Celery's Redis transport (kombu) sends multi-key commands that Redis Cluster rejects with "
    "CROSSSLOT, so the broker must be a replication group with cluster mode disabled"
)


# Enhanced Monitoring: the intervals RDS accepts (0 turns it off).
MONITORING_INTERVALS = (0, 1, 5, 10, 15, 30, 60)
# `python -m infra.ops restore` names a restored instance `<stack database>-r<YYYYMMDDHHMM>` (UTC
# restore time); the identifier stays within RDS's 63 characters (infra.naming.MAX_PREFIX_LENGTH).
RESTORED_SUFFIX = r"-r\d{12}"
RESTORED_IDENTIFIER_PATTERN = rf"([a-z][a-z0-9]*(-[a-z0-9]+)*{RESTORED_SUFFIX})?"


def major_version(version: str) -> int:
    return int(version.split(".")[0])


@dataclass(frozen=True)
class DatabaseConfig:
    engine_version: str  # MAJOR or MAJOR.MINOR
    instance_class: str
    allocated_storage_gib: int
    backup_retention_days: int
    multi_az: bool
    deletion_protection: bool
    performance_insights: bool  # 7 days of history, the free tier of Database Insights (standard)
    monitoring_interval_seconds: int  # Enhanced Monitoring; 0: off
    # A point-in-time restore of the stack's database that the stack adopts as its database
    # (`python -m infra.ops restore`); empty: the stack's own instance.
    restored_identifier: str

    @property
    def parameter_group_family(self) -> str:
        return f"postgres{major_version(self.engine_version)}"

    @classmethod
    def read(cls, read: ConfigReader, stack_database: str | None = None) -> DatabaseConfig:
        """`stack_database`: the identifier of the stack's own instance, when known; a restored
        identifier must be a restore of it."""
        majors = ", ".join(str(major) for major in POSTGRES_MAJOR_VERSIONS)
        config = cls(
            engine_version=read.string(
                "dbEngineVersion", r"\d+(\.\d+)?", f"MAJOR or MAJOR.MINOR with major {majors}"
            ),
            instance_class=read.string(
                "dbInstanceClass", r"db\.[a-z0-9-]+\.[a-z0-9]+", "an RDS class like db.t4g.micro"
            ),
            allocated_storage_gib=read.integer("dbAllocatedStorage", 20, 65536),
            backup_retention_days=read.integer("dbBackupRetentionDays", 1, 35),
            multi_az=read.boolean("dbMultiAz"),
            deletion_protection=read.boolean("dbDeletionProtection"),
            performance_insights=read.boolean("dbPerformanceInsights"),
            monitoring_interval_seconds=read.integer_choice(
                "dbMonitoringIntervalSeconds", MONITORING_INTERVALS
            ),
            restored_identifier=read.string(
                "dbRestoredIdentifier",
                RESTORED_IDENTIFIER_PATTERN,
                "empty, or the identifier `python -m infra.ops restore` printed (<database>-rYYYYMMDDHHMM)",
            ),
        )
        restored = config.restored_identifier
        if (
            restored
            and stack_database
            and not re.fullmatch(re.escape(stack_database) + RESTORED_SUFFIX, restored)
        ):
            read.report(
                "dbRestoredIdentifier",
                restored,
                f"a restore of this stack's database: {stack_database}-rYYYYMMDDHHMM",
            )
        if (
            read.valid("dbEngineVersion")
            and major_version(config.engine_version) not in POSTGRES_MAJOR_VERSIONS
        ):
            read.report("dbEngineVersion", config.engine_version, f"major version {majors}")
        return config


@dataclass(frozen=True)
class BrokerConfig:
    engine: CacheEngine
    engine_version: str  # MAJOR.MINOR
    node_type: str
    replicas: int  # with at least one: automatic failover and Multi-AZ
    snapshot_retention_days: int

    @property
    def parameter_group_family(self) -> str:
        major = major_version(self.engine_version)
        if self.engine == "redis" and major == 6:
            return "redis6.x"
        return f"{self.engine}{major}"

    @classmethod
    def read(cls, read: ConfigReader) -> BrokerConfig:
        config = cls(
            engine=read.choice("redisEngine", CACHE_ENGINES),
            engine_version=read.string("redisEngineVersion", r"\d+\.\d+", "MAJOR.MINOR, e.g. 7.1"),
            node_type=read.string(
                "redisNodeType",
                r"cache\.[a-z0-9-]+\.[a-z0-9]+",
                "an ElastiCache node type like cache.t4g.micro",
            ),
            replicas=read.integer("redisReplicas", 0, 5),
            snapshot_retention_days=read.integer("redisSnapshotRetentionDays", 0, 35),
        )
        read.refused("redisClusterMode", CELERY_CANNOT_USE_CLUSTER)
        read.refused(
            "redisServerless", "ElastiCache Serverless is a Redis Cluster: " + CELERY_CANNOT_USE_CLUSTER
        )
        if read.valid("redisEngine", "redisEngineVersion"):
            majors = CACHE_ENGINE_MAJOR_VERSIONS[config.engine]
            if major_version(config.engine_version) not in majors:
                read.report(
                    "redisEngineVersion",
                    config.engine_version,
                    f"for {config.engine}, major version {' or '.join(str(major) for major in majors)}",
                )
        return config
