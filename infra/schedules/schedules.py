"""One alarm per Beat schedule entry, kept in step with the schedule each release records.

The alarms are managed by a dynamic resource (provider.py) fed by the release's record: the entries
are what the released image reports, so they are known only once the release has run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from infra.schedules.alarms import alarm_name
from infra.schedules.config import ScheduleAlarmsConfig
from infra.schedules.provider import ScheduleAlarmsProvider
from infra.schedules.record import recorded_schedule


@dataclass(frozen=True)
class ScheduleAlarmsArgs:
    schedule: pulumi.Input[Mapping[str, Any]]  # the release record's `beatSchedule`
    thresholds: ScheduleAlarmsConfig
    prefix: str  # the stack's prefix, which names the alarms
    namespace: str  # where the publisher writes PeriodicTaskSecondsSinceSuccess
    topic_arn: pulumi.Input[str]  # who hears of a late entry
    region: pulumi.Input[str]


def entry_alarm_names(prefix: str, schedule: Mapping[str, Any] | None) -> list[str]:
    """The names of the alarms of a recorded schedule (entries with a period), for the dashboard."""
    entries = recorded_schedule(schedule or {})
    return [alarm_name(prefix, entry.name) for entry in entries.values() if entry.period_seconds is not None]


class ScheduleAlarmSet(pulumi.dynamic.Resource):
    alarm_names: pulumi.Output[list[str]]

    def __init__(self, name: str, args: ScheduleAlarmsArgs, opts: pulumi.ResourceOptions) -> None:
        props = {
            "schedule": args.schedule,
            "periods": args.thresholds.periods,
            "minimum_minutes": args.thresholds.minimum_minutes,
            "prefix": args.prefix,
            "namespace": args.namespace,
            "actions": [args.topic_arn],
            "region": args.region,
            "alarm_names": None,  # filled in by the provider
        }
        super().__init__(ScheduleAlarmsProvider(), name, props, opts)


class ScheduleAlarms(pulumi.ComponentResource):
    alarm_names: pulumi.Output[list[str]]

    def __init__(
        self, name: str, args: ScheduleAlarmsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("djcelery:index:ScheduleAlarms", name, None, opts)
        alarms = ScheduleAlarmSet(f"{name}-set", args, pulumi.ResourceOptions(parent=self))
        self.alarm_names = alarms.alarm_names
        self.register_outputs({"alarm_names": self.alarm_names})
