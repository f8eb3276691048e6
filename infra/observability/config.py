"""Log and alarm settings of a stack."""

from __future__ import annotations

from dataclasses import dataclass

from infra.config.reader import EMAIL_ADDRESS_PATTERN, ConfigReader

# The only values CloudWatch Logs accepts for retentionInDays.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip


@dataclass(frozen=True)
class LogsConfig:
    retention_days: int  # every log group and the ALB access log bucket
    container_insights: bool

    @classmethod
    def read(cls, read: ConfigReader) -> LogsConfig:
        return cls(
            retention_days=read.integer_choice("logRetentionDays", LOG_RETENTION_DAYS),
            container_insights=read.boolean("containerInsights"),
        )


@dataclass(frozen=True)
class AlarmsConfig:
    """The numbers people choose; everything else about the alarms is fixed (see alarms.py)."""

    email: str  # subscribed to the alarm topic; empty: no subscription
    web_5xx_percent: int
    db_free_storage_percent: int
    redis_memory_percent: int
    beat_minutes: int

    @classmethod
    def read(cls, read: ConfigReader) -> AlarmsConfig:
        return cls(
            email=read.string(
                "alarmEmail", f"({EMAIL_ADDRESS_PATTERN})?", "empty, or an e-mail address to send alarms to"
            ),
            web_5xx_percent=read.integer("web5xxAlarmPercent", 1, 100),
            db_free_storage_percent=read.integer("dbFreeStorageAlarmPercent", 1, 90),
            redis_memory_percent=read.integer("redisMemoryAlarmPercent", 10, 100),
            beat_minutes=read.integer("beatAlarmMinutes", 1, 60),
        )
