"""The alarms of the Beat schedule's entries as the program keeps them: fed by the release record,
put and deleted in CloudWatch by their provider, drawn on the dashboard."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.schedules.provider import ScheduleAlarmsProvider
from infra.schedules.record import recorded_schedule
from testkit.program import ProgramRun, run_program
from tests.infra.schedules.test_alarms import BEAT_SCHEDULE

REGION = "us-east-1"
ALARM_SET = "schedule-alarms-set"


@pytest.fixture(scope="module")
def scheduled_run() -> ProgramRun:
    return run_program("dev", released={"beat_schedule": BEAT_SCHEDULE})


def alarm_set(run: ProgramRun) -> Any:
    return run.one("pulumi-python:dynamic:Resource", ALARM_SET)


def test_the_release_record_feeds_one_alarm_set_to_the_stack_topic(scheduled_run: ProgramRun) -> None:
    inputs = alarm_set(scheduled_run).inputs
    # Pulumi drops null values of a map on their way to a provider: the reader must not need them.
    assert recorded_schedule(inputs["schedule"]) == recorded_schedule(BEAT_SCHEDULE), "the released schedule"
    assert inputs["actions"] == [scheduled_run.outputs["alarmTopicArn"]]
    assert (
        inputs["periods"],
        inputs["minimumMinutes"] if "minimumMinutes" in inputs else inputs["minimum_minutes"],
    ) == (
        2,
        5,
    )
    assert inputs["namespace"] == scheduled_run.outputs["queueMetricsNamespace"]


def test_the_dashboard_shows_the_state_of_each_entrys_alarm(scheduled_run: ProgramRun) -> None:
    """A CloudWatch dashboard `alarm` widget takes alarm ARNs (dashboard body structure)."""
    body = json.loads(scheduled_run.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"])
    [widget] = [widget for widget in body["widgets"] if widget["type"] == "alarm"]
    names = [arn.rsplit(":alarm:", 1)[1] for arn in widget["properties"]["alarms"]]
    timed = [name for name, entry in BEAT_SCHEDULE.items() if entry["period_seconds"] is not None]
    assert sorted(names) == sorted(f"djcelery-dev-schedule-{name}" for name in timed)
    assert all(
        arn.startswith("arn:aws:cloudwatch:us-east-1:123456789012:alarm:")
        for arn in widget["properties"]["alarms"]
    )


def test_without_beat_there_is_no_schedule_and_no_alarm() -> None:
    run = run_program(
        "pr-794", {"ephemeral": True, "beatEnabled": False}, released={"beat_schedule": BEAT_SCHEDULE}
    )
    assert [r.name for r in run.of_type("pulumi-python:dynamic:Resource") if r.name == ALARM_SET] == []


@pytest.fixture
def cloudwatch() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("cloudwatch", region_name=REGION)


def props(schedule: dict[str, Any]) -> dict[str, Any]:
    return {
        "schedule": schedule,
        "periods": 2,
        "minimum_minutes": 5,
        "prefix": "djcelery-dev",
        "namespace": "djcelery/dev/CeleryQueues",
        "actions": ["arn:aws:sns:us-east-1:123456789012:alarms"],
        "region": REGION,
        "__provider": "current",
    }


def alarm_names(cloudwatch: Any) -> list[str]:
    return sorted(alarm["AlarmName"] for alarm in cloudwatch.describe_alarms()["MetricAlarms"])


def test_the_provider_puts_updates_and_deletes_one_alarm_per_entry(cloudwatch: Any) -> None:
    provider = ScheduleAlarmsProvider(clients=lambda _region: cloudwatch)
    created = provider.create(props(BEAT_SCHEDULE))
    assert (
        alarm_names(cloudwatch)
        == sorted(created.outs["alarm_names"])
        == [
            "djcelery-dev-schedule-hourly-report",
            "djcelery-dev-schedule-nightly-cleanup",
            "djcelery-dev-schedule-record-heartbeat",
        ]
    )
    heartbeat = cloudwatch.describe_alarms(AlarmNames=["djcelery-dev-schedule-record-heartbeat"])[
        "MetricAlarms"
    ][0]
    assert heartbeat["MetricName"] == "PeriodicTaskSecondsSinceSuccess"
    assert heartbeat["Dimensions"] == [{"Name": "Entry", "Value": "record-heartbeat"}]

    fewer = {name: entry for name, entry in BEAT_SCHEDULE.items() if name != "hourly-report"}
    olds = {**props(BEAT_SCHEDULE), "alarm_names": created.outs["alarm_names"]}
    assert provider.diff("id", olds, props(fewer)).changes
    updated = provider.update("id", olds, props(fewer))
    assert alarm_names(cloudwatch) == sorted(updated.outs["alarm_names"]), "the removed entry's alarm is gone"
    assert "djcelery-dev-schedule-hourly-report" not in alarm_names(cloudwatch)

    provider.delete("id", updated.outs)
    assert alarm_names(cloudwatch) == [], "destroy leaves no alarm behind"


def test_a_provider_only_update_puts_nothing(cloudwatch: Any) -> None:
    def no_cloudwatch(region: str) -> Any:
        raise AssertionError(f"no CloudWatch client may be created here (asked for {region})")

    provider = ScheduleAlarmsProvider(clients=no_cloudwatch)
    olds = {**props(BEAT_SCHEDULE), "alarm_names": ["a"], "__provider": "stored-by-an-earlier-release"}
    news = props(BEAT_SCHEDULE)
    assert provider.diff("id", olds, news).changes
    assert provider.update("id", olds, news).outs["alarm_names"] == ["a"]
