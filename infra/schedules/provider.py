"""The dynamic provider that keeps one CloudWatch alarm per Beat schedule entry (alarms.py).

The entries are known only once the release has run the new image (its `release_state` reports the
schedule), so the alarms cannot be declared as Pulumi resources when the program starts: declared
inside an apply they would vanish from every preview of a new release. This provider takes the
recorded schedule as an input: create and update put one alarm per entry (PutMetricAlarm replaces an
alarm of the same name) and delete the alarms of entries that are gone; delete removes them all.
Alarm names are fixed per stack and entry, so nothing is left behind. Like every provider of the
program it holds module-level functions only (pickled by reference) and replaces a stale stored
copy of itself (infra/dynamic_providers.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import boto3
from botocore.config import Config
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

from infra.dynamic_providers import changed, provider_refreshed
from infra.schedules.alarms import alarm_name, entry_alarms
from infra.schedules.config import ScheduleAlarmsConfig
from infra.schedules.record import recorded_schedule

# What the alarms are made of: a new schedule, thresholds, topic or namespace puts them again.
ALARM_TRIGGERS = ("schedule", "prefix", "namespace", "actions", "periods", "minimum_minutes", "region")
DELETE_ALARMS_BATCH = 100  # DeleteAlarms takes at most 100 names per call (botocore AlarmNames)

CloudWatchClients = Callable[[str], Any]  # region -> CloudWatch client


def cloudwatch_client(region: str) -> Any:
    """A CloudWatch client from the standard AWS credential chain."""
    config = Config(retries={"mode": "standard", "max_attempts": 10})
    return boto3.session.Session(region_name=region).client("cloudwatch", config=config)


def put_schedule_alarms(cloudwatch: Any, props: dict[str, Any]) -> list[str]:
    """Puts one alarm per entry of `props["schedule"]`; their names."""
    thresholds = ScheduleAlarmsConfig(int(props["periods"]), int(props["minimum_minutes"]))
    names = []
    for alarm in entry_alarms(recorded_schedule(props.get("schedule") or {}), thresholds):
        name = alarm_name(str(props["prefix"]), alarm.entry.name)
        cloudwatch.put_metric_alarm(**alarm.put_metric_alarm(name, str(props["namespace"]), props["actions"]))
        names.append(name)
    return names


def delete_alarms(cloudwatch: Any, names: Sequence[str]) -> None:
    for start in range(0, len(names), DELETE_ALARMS_BATCH):
        cloudwatch.delete_alarms(AlarmNames=list(names[start : start + DELETE_ALARMS_BATCH]))


class ScheduleAlarmsProvider(ResourceProvider):
    def __init__(self, clients: CloudWatchClients = cloudwatch_client) -> None:
        super().__init__()
        self._clients = clients

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return DiffResult(changes=changed(olds, news, ALARM_TRIGGERS))

    def create(self, props: dict[str, Any]) -> CreateResult:
        names = put_schedule_alarms(self._clients(str(props["region"])), props)
        return CreateResult(id_=f"{props['prefix']}-schedule-alarms", outs={**props, "alarm_names": names})

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        refreshed = provider_refreshed(olds, news, ALARM_TRIGGERS)
        if refreshed is not None:
            return UpdateResult(outs=refreshed)
        cloudwatch = self._clients(str(news["region"]))
        names = put_schedule_alarms(cloudwatch, news)
        delete_alarms(cloudwatch, [name for name in olds.get("alarm_names") or [] if name not in names])
        return UpdateResult(outs={**news, "alarm_names": names})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        delete_alarms(self._clients(str(props["region"])), list(props.get("alarm_names") or []))
