"""One alarm per Beat schedule entry, from the release record's schedule.

The requests are checked against CloudWatch's own rules: botocore's PutMetricAlarm model (shapes
and documentation, in the installed botocore), and moto's CloudWatch, which stores them. When the
alarm fires follows CloudWatch's documented evaluation ("Evaluating an alarm" and "Configuring how
CloudWatch alarms treat missing data", CloudWatch user guide), replayed minute by minute here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.validate import ParamValidator
from moto import mock_aws

from core.schedule_state import EntryRecord
from infra.schedules.alarms import EVALUATION_PERIODS, EntryAlarm, alarm_name, entry_alarms
from infra.schedules.config import ScheduleAlarmsConfig
from infra.schedules.record import recorded_schedule
from queuemetrics import schema
from queuemetrics.publisher import schedule_data

CLOUDWATCH = botocore.session.get_session().get_service_model("cloudwatch")
PUT_METRIC_ALARM = CLOUDWATCH.operation_model("PutMetricAlarm").input_shape
NAMESPACE = "djcelery/dev/CeleryQueues"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:djcelery-dev-alarms"
DEFAULTS = ScheduleAlarmsConfig(periods=schema.STALE_AFTER_PERIODS, minimum_minutes=5)

# `beatSchedule` of a release record, as `manage.py release_state` writes it (its shape is checked
# against the real command in tests/infra/release/test_release_gate.py).
BEAT_SCHEDULE: dict[str, Any] = {
    "record-heartbeat": {
        "task": "signups.tasks.record_heartbeat",
        "queue": "default",
        "schedule": "every 60 s",
        "period_seconds": 60.0,
        "policy": {"catch_up": "once", "overlap": "skip", "deadline_seconds": None},
    },
    "hourly-report": {
        "task": "reports.tasks.hourly",
        "queue": "default",
        "schedule": "crontab 0 * * * *",
        "period_seconds": 3600.0,
        "policy": {"catch_up": "skip", "overlap": "skip", "deadline_seconds": 60.0},
    },
    "nightly-cleanup": {
        "task": "reports.tasks.cleanup",
        "queue": "default",
        "schedule": "crontab 0 3 * * *",
        "period_seconds": 86400.0,
        "policy": {"catch_up": "once", "overlap": "allow", "deadline_seconds": 7200.0},
    },
    "at-sunrise": {
        "task": "reports.tasks.sunrise",
        "queue": "default",
        "schedule": "<solar: sunrise>",
        "period_seconds": None,
        "policy": {"catch_up": "once", "overlap": "allow", "deadline_seconds": None},
    },
}


def alarms(thresholds: ScheduleAlarmsConfig = DEFAULTS) -> dict[str, EntryAlarm]:
    return {alarm.entry.name: alarm for alarm in entry_alarms(recorded_schedule(BEAT_SCHEDULE), thresholds)}


def request(alarm: EntryAlarm, prefix: str = "djcelery-dev") -> dict[str, Any]:
    return alarm.put_metric_alarm(alarm_name(prefix, alarm.entry.name), NAMESPACE, [TOPIC])


def test_each_entry_with_a_period_alarms_after_max_of_two_periods_and_five_minutes() -> None:
    stale_after = {name: alarm.stale_after_seconds for name, alarm in alarms().items()}

    assert stale_after == {
        "record-heartbeat": 300,  # 2 x 60 s is below the 5-minute floor
        "hourly-report": 2 * 3600,
        "nightly-cleanup": 2 * 86400,
    }, "an entry whose runs cannot be counted has no period, so no alarm"
    custom = alarms(ScheduleAlarmsConfig(periods=3, minimum_minutes=10))
    assert custom["record-heartbeat"].stale_after_seconds == 600
    assert custom["hourly-report"].stale_after_seconds == 3 * 3600


def test_the_alarm_watches_the_metric_the_publisher_sends_for_the_entry() -> None:
    """The metric's name and dimensions come from the publisher's schema: the datapoint the
    publisher writes for an entry is the one its alarm reads."""
    sent = schedule_data({"hourly-report": EntryRecord(succeeded_at=1000.0)}, now=1060.0)
    since_success = next(
        d for d in sent if d["MetricName"] == schema.PERIODIC_TASK_SECONDS_SINCE_SUCCESS.name
    )

    watched = request(alarms()["hourly-report"])

    assert (watched["MetricName"], watched["Dimensions"]) == (
        since_success["MetricName"],
        since_success["Dimensions"],
    )
    assert watched["Namespace"] == NAMESPACE


def test_the_requests_are_valid_put_metric_alarm_requests() -> None:
    for alarm in alarms().values():
        report = ParamValidator().validate(request(alarm), PUT_METRIC_ALARM)
        assert not report.has_errors(), report.generate_report()


def test_period_and_evaluation_are_values_cloudwatch_accepts() -> None:
    period_doc = PUT_METRIC_ALARM.members["Period"].documentation
    assert "Valid values are 10, 20, 30, and any multiple of 60" in period_doc
    assert (
        "For alarms with a period of less than one hour (3,600 seconds), the total evaluation period "
        "can't be longer than one day (86,400 seconds)"
    ) in period_doc
    datapoints_doc = PUT_METRIC_ALARM.members["DatapointsToAlarm"].documentation
    assert "M out of N" in datapoints_doc
    for alarm in alarms().values():
        sent = request(alarm)
        assert sent["Period"] in (10, 20, 30) or sent["Period"] % 60 == 0
        assert sent["Period"] >= 60, (
            "the publisher's metrics are high resolution, but a sub-minute alarm costs more"
        )
        assert sent["Period"] < 3600 and sent["Period"] * sent["EvaluationPeriods"] <= 86400
        assert 1 <= sent["DatapointsToAlarm"] <= sent["EvaluationPeriods"]
        assert 0 < sent["Threshold"] < alarm.stale_after_seconds


def test_missing_data_breaches_so_a_silent_publisher_or_an_unscheduled_entry_alarms() -> None:
    treat_missing = PUT_METRIC_ALARM.members["TreatMissingData"].documentation
    assert "breaching | notBreaching | ignore | missing" in treat_missing
    assert {request(alarm)["TreatMissingData"] for alarm in alarms().values()} == {"breaching"}


def test_the_longest_entry_name_fits_the_alarm_name_and_description() -> None:
    """AlarmName: 1-255 characters (no control characters); AlarmDescription: at most 1024; a
    dimension value: ASCII only (botocore's shapes and documentation)."""
    longest = "e" * 200
    assert schema.ENTRY_NAME_PATTERN.match(longest)
    schedule = recorded_schedule({longest: {**BEAT_SCHEDULE["nightly-cleanup"]}})
    [alarm] = entry_alarms(schedule, DEFAULTS)

    sent = request(alarm, prefix="djcelery-pr-12345")

    assert len(sent["AlarmName"]) <= CLOUDWATCH.shape_for("AlarmName").metadata["max"]
    assert len(sent["AlarmDescription"]) <= CLOUDWATCH.shape_for("AlarmDescription").metadata["max"]
    assert (
        "must contain only ASCII characters"
        in CLOUDWATCH.shape_for("Dimension").members["Value"].documentation
    )
    assert sent["Dimensions"][0]["Value"].isascii()


def test_names_that_cannot_become_alarms_are_refused_naming_them() -> None:
    schedule = recorded_schedule({"rapport du matin ☀": BEAT_SCHEDULE["hourly-report"]})
    with pytest.raises(ValueError, match=r"rapport du matin ☀.*1-200 ASCII letters"):
        entry_alarms(schedule, DEFAULTS)
    with pytest.raises(ValueError, match="longer than CloudWatch's 255"):
        alarm_name("p" * 60, "e" * 200)
    with pytest.raises(ValueError, match="would fire during any Beat restart"):
        entry_alarms(recorded_schedule(BEAT_SCHEDULE), ScheduleAlarmsConfig(periods=1, minimum_minutes=3))


def test_an_older_record_without_periods_has_no_entry_alarms() -> None:
    older = {name: {"task": fields["task"], "queue": "default"} for name, fields in BEAT_SCHEDULE.items()}
    assert entry_alarms(recorded_schedule(older), DEFAULTS) == []


def test_cloudwatch_stores_the_alarms() -> None:
    with mock_aws():
        cloudwatch = boto3.client("cloudwatch", region_name="eu-west-1")
        for alarm in alarms().values():
            cloudwatch.put_metric_alarm(**request(alarm))
        stored = cloudwatch.describe_alarms(AlarmNamePrefix="djcelery-dev-schedule-")["MetricAlarms"]

    assert sorted(alarm["AlarmName"] for alarm in stored) == [
        "djcelery-dev-schedule-hourly-report",
        "djcelery-dev-schedule-nightly-cleanup",
        "djcelery-dev-schedule-record-heartbeat",
    ]
    assert {alarm["TreatMissingData"] for alarm in stored} == {"breaching"}


# --- when it fires ----------------------------------------------------------------------------------


def first_alarm_minute(
    sent: dict[str, Any], value_at: Callable[[float], float | None], minutes: int
) -> int | None:
    """The first minute at whose end CloudWatch puts the alarm in ALARM, replaying its documented rule:
    each minute's statistic of the datapoints is compared with the threshold; a minute without data
    is breaching (TreatMissingData); the alarm fires when DatapointsToAlarm of the last
    EvaluationPeriods minutes breach. `value_at(second)` is what the publisher sends then (None: nothing),
    every 10 seconds."""
    assert sent["Statistic"] == "Minimum" and sent["ComparisonOperator"] == "GreaterThanThreshold"
    breaching = []
    for minute in range(minutes):
        values = [
            v for second in range(minute * 60, minute * 60 + 60, 10) if (v := value_at(second)) is not None
        ]
        breaching.append(not values or min(values) > sent["Threshold"])
        window = breaching[-sent["EvaluationPeriods"] :]
        if len(window) == sent["EvaluationPeriods"] and sum(window) >= sent["DatapointsToAlarm"]:
            return minute + 1
    return None


def test_a_failing_entry_alarms_once_it_has_not_succeeded_for_its_limit() -> None:
    """The hourly report last succeeded at 0 and then fails: stale after 2 h, the alarm fires within
    the minute after."""
    sent = request(alarms()["hourly-report"])

    fired = first_alarm_minute(sent, lambda second: float(second), minutes=200)

    assert fired is not None and 7200 < fired * 60 <= 7200 + 60, f"fired at minute {fired}"


def test_a_silent_publisher_alarms_after_a_few_minutes_and_a_beat_restart_does_not() -> None:
    sent = request(alarms()["hourly-report"])
    succeeded_recently = 30.0

    def silent_from(start: int, end: int = 10**9) -> Callable[[float], float | None]:
        return lambda second: None if start * 60 <= second < end * 60 else succeeded_recently

    assert first_alarm_minute(sent, silent_from(10), minutes=30) == 10 + EVALUATION_PERIODS
    assert first_alarm_minute(sent, silent_from(10, 12), minutes=30) is None, "two minutes of restart"


def test_a_never_run_entry_alarms_once_it_is_stale_counted_from_when_beat_scheduled_it() -> None:
    sent = request(alarms()["record-heartbeat"])
    scheduled_at = 0.0
    fired = first_alarm_minute(
        sent,
        lambda second: schedule_data({"e": EntryRecord(scheduled_since=scheduled_at)}, second)[0]["Value"],
        30,
    )
    assert fired is not None and 300 < fired * 60 <= 300 + 60, (
        f"stale after 5 minutes, fired at minute {fired}"
    )
