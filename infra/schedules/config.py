"""When a Beat schedule entry's alarm fires: the stack's choice of multiplier and floor."""

from __future__ import annotations

from dataclasses import dataclass

from infra.config.reader import ConfigReader

MINUTE = 60


@dataclass(frozen=True)
class ScheduleAlarmsConfig:
    """An entry is late when it has not succeeded for max(periods x its period, minimum_minutes)."""

    periods: int
    minimum_minutes: int

    @classmethod
    def read(cls, read: ConfigReader) -> ScheduleAlarmsConfig:
        return cls(
            periods=read.integer("scheduleAlarmPeriods", 1, 10),
            # Beat restarts within minutes (a deploy, a lost lock): a shorter floor would alarm then.
            minimum_minutes=read.integer("scheduleAlarmMinimumMinutes", 5, 24 * 60),
        )

    @property
    def minimum_seconds(self) -> int:
        return self.minimum_minutes * MINUTE
