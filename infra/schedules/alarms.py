"""One CloudWatch alarm per Beat schedule entry: the entry has not succeeded for too long.

Each alarm watches the entry's PeriodicTaskSecondsSinceSuccess (queuemetrics.schema), which the
queue-metrics publisher beside Beat sends every few seconds. It fires when the entry has not
succeeded for max(periods x its period, minimum) ("stale after", ScheduleAlarmsConfig): runs missed,
skipped or failing alike. It fires too when no datapoint arrives for EVALUATION_PERIODS minutes:
the publisher is silent, or Beat has never scheduled the entry (a never-run entry counts from the
moment Beat first scheduled it, so it alarms once it is stale).

How: CloudWatch compares each minute's Minimum with the threshold, and alarms when all of the last
EVALUATION_PERIODS minutes breach it, a minute without data counting as breaching. The value grows
by 60 s a minute, so the threshold is "stale after" less those minutes: the last of them ends as the
entry becomes stale, and a Beat restart shorter than them is no alarm.

The alarms are plain data: `put_metric_alarm` is the request for CloudWatch's PutMetricAlarm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from infra.schedules.config import MINUTE, ScheduleAlarmsConfig
from infra.schedules.record import ScheduledEntry
from queuemetrics import schema

ALARM_PERIOD_SECONDS = MINUTE
EVALUATION_PERIODS = 3
STATISTIC = "Minimum"  # the whole minute was stale, not one datapoint of it
ALARM_NAME_MAX_CHARS = 255


@dataclass(frozen=True)
class EntryAlarm:
    entry: ScheduledEntry
    stale_after_seconds: float

    @property
    def threshold(self) -> float:
        return self.stale_after_seconds - EVALUATION_PERIODS * ALARM_PERIOD_SECONDS

    def description(self) -> str:
        entry = self.entry
        policy = f"; {entry.policy.text()}" if entry.policy else ""
        return (
            f"Beat schedule entry {entry.name} ({entry.schedule}{policy}, task {entry.task}) has not "
            f"succeeded for {duration(self.stale_after_seconds)}, or no datapoint came for "
            f"{EVALUATION_PERIODS} minutes (the queue-metrics publisher beside Beat is silent, or Beat "
            "never scheduled the entry). Its runs failed, were skipped or overlapped, or were never sent: "
            "python -m infra.ops schedules <stack> lists each entry's last run and state."
        )

    def put_metric_alarm(self, alarm_name: str, namespace: str, actions: Sequence[str]) -> dict[str, Any]:
        """The PutMetricAlarm request of this alarm, notifying `actions` (SNS topic ARNs)."""
        metric = schema.PERIODIC_TASK_SECONDS_SINCE_SUCCESS
        return {
            "AlarmName": alarm_name,
            "AlarmDescription": self.description(),
            "ActionsEnabled": True,
            "AlarmActions": list(actions),
            "OKActions": list(actions),
            "Namespace": namespace,
            "MetricName": metric.name,
            "Dimensions": [
                {"Name": name, "Value": value}
                for name, value in schema.dimensions(metric, entry=self.entry.name).items()
            ],
            "Statistic": STATISTIC,
            "Period": ALARM_PERIOD_SECONDS,
            "EvaluationPeriods": EVALUATION_PERIODS,
            "DatapointsToAlarm": EVALUATION_PERIODS,
            "Threshold": self.threshold,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "breaching",
        }


def entry_alarms(
    schedule: Mapping[str, ScheduledEntry], thresholds: ScheduleAlarmsConfig
) -> list[EntryAlarm]:
    """One alarm per entry that has a period (an entry whose runs cannot be counted, or one from a
    record older than the policies, has no "too long"), in the entries' order."""
    bad_names = [name for name in schedule if not schema.ENTRY_NAME_PATTERN.match(name)]
    if bad_names:
        raise ValueError(
            f"Beat schedule entries {bad_names} cannot have alarms: a name must be {schema.ENTRY_NAME_RULE}"
        )
    alarms = [
        EntryAlarm(
            entry,
            schema.stale_after_seconds(entry.period_seconds, thresholds.periods, thresholds.minimum_seconds),
        )
        for entry in schedule.values()
        if entry.period_seconds is not None
    ]
    too_short = [alarm.entry.name for alarm in alarms if alarm.threshold <= 0]
    if too_short:
        raise ValueError(
            f"the alarms of {too_short} would fire during any Beat restart: the minimum must exceed "
            f"{EVALUATION_PERIODS} minutes"
        )
    return alarms


def alarm_name(prefix: str, entry: str) -> str:
    """The alarm's name: fixed per stack and entry, so a later release updates or deletes it."""
    name = f"{prefix}-schedule-{entry}"
    if len(name) > ALARM_NAME_MAX_CHARS:
        raise ValueError(f"alarm name {name!r} is longer than CloudWatch's {ALARM_NAME_MAX_CHARS} characters")
    return name


def duration(seconds: float) -> str:
    """5 min, 2 h, 1.5 d: how people read a threshold."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{round(seconds / size, 1):g} {unit}"
    return f"{seconds:g} s"
