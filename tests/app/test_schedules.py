"""Beat schedule entries: periods, missed runs, policies, and Beat applying them.

Beat's scheduler (core.beat.HeartbeatRedBeatScheduler) runs in this process against the real Redis:
the test writes the time an entry last ran as RedBeat stores it, as if Beat had been away since
then, and reads the messages one tick publishes to the broker.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
import redis
from celery.schedules import BaseSchedule, crontab, schedule
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from redbeat.schedulers import RedBeatSchedulerEntry

from config.celery import app as celery_app
from core import schedule_state, schedules
from core.beat import SCHEDULE_ENTRY_HEADER, SCHEDULED_FOR_HEADER, HeartbeatRedBeatScheduler
from infra import app_contract

HEARTBEAT_TASK = "signups.tasks.record_heartbeat"
MINUTE = timedelta(minutes=1)


# --- periods --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry_schedule", "period"),
    [
        (schedule(timedelta(seconds=30)), 30),
        (crontab(), 60),  # every minute
        (crontab(minute="*/15", hour="9-17", day_of_week="mon-fri"), 15 * 60),
        (crontab(minute=0, hour=3), 24 * 3600),  # daily
        (crontab(minute="0,30", hour="0,23"), 30 * 60),  # 23:30 -> 00:00 the next day is the shortest gap
        (crontab(minute=0, hour=0, day_of_week="mon"), 7 * 24 * 3600),
        # The 31st: July 31 -> August 31 is the shortest gap (31 days); February, April... have none.
        (crontab(minute=0, hour=0, day_of_month=31), 31 * 24 * 3600),
        # February 29: every four years (1461 days) within 2000-2027.
        (crontab(minute=0, hour=0, day_of_month=29, month_of_year=2), 1461 * 24 * 3600),
        # Friday the 13th: in a non-leap year February 13 and March 13 are both Fridays 28 days apart.
        (crontab(minute=0, hour=0, day_of_month=13, day_of_week="fri"), 28 * 24 * 3600),
    ],
)
def test_the_period_is_the_shortest_gap_between_two_runs(entry_schedule: Any, period: int) -> None:
    assert schedules.period_seconds(entry_schedule) == period


def test_a_schedule_whose_runs_cannot_be_counted_has_no_period() -> None:
    assert schedules.period_seconds(BaseSchedule()) is None, "a custom schedule class"


# --- missed runs ------------------------------------------------------------------------------------


def test_missed_interval_runs_are_counted_from_the_last_run() -> None:
    every = schedule(timedelta(seconds=30))
    last = datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)

    assert schedules.missed_runs(every, last, last + timedelta(seconds=29)) is None, "nothing due yet"
    missed = schedules.missed_runs(every, last, last + timedelta(seconds=100))
    assert missed == schedules.MissedRuns(
        count=3, first=last + timedelta(seconds=30), latest=last + timedelta(seconds=90)
    )
    assert missed.lateness_seconds(last + timedelta(seconds=100)) == 10


def test_missed_crontab_runs_are_counted_across_midnight() -> None:
    quarter_hours = crontab(minute="*/15")
    last = datetime(2026, 1, 4, 23, 50, tzinfo=UTC)
    now = datetime(2026, 1, 5, 1, 7, 30, tzinfo=UTC)

    missed = schedules.missed_runs(quarter_hours, last, now)

    # 00:00, 00:15, 00:30, 00:45, 01:00
    assert missed == schedules.MissedRuns(
        count=5, first=datetime(2026, 1, 5, 0, 0, tzinfo=UTC), latest=datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
    )


# --- policies -----------------------------------------------------------------------------------------


def test_policies_default_to_celerys_own_behaviour_and_skip_has_a_deadline() -> None:
    assert schedules.EntryPolicy.of(None) == schedules.EntryPolicy("once", "allow", None)
    assert schedules.EntryPolicy.of({"policy": {"catch_up": "skip"}}).deadline_seconds == (
        schedules.SKIP_DEADLINE_SECONDS
    )
    declared = {"policy": {"catch_up": "once", "deadline": 90, "overlap": "skip"}}
    assert schedules.EntryPolicy.of(declared).record() == {
        "catch_up": "once",
        "overlap": "skip",
        "deadline_seconds": 90.0,
    }


def test_every_problem_of_every_entry_is_refused_at_once_naming_the_entry() -> None:
    beat_schedule = {
        "fine": {"task": HEARTBEAT_TASK, "schedule": 30, "options": {"policy": {"catch_up": "once"}}},
        "bad values": {
            "task": HEARTBEAT_TASK,
            "schedule": 30,
            "options": {"policy": {"catch_up": "twice", "overlap": "queue", "deadline": -1, "retries": 3}},
        },
        "expiring": {"task": HEARTBEAT_TASK, "schedule": 30, "options": {"expires": 10}},
        "naïve name": {"task": HEARTBEAT_TASK, "schedule": 30},
        "custom": {
            "task": HEARTBEAT_TASK,
            "schedule": BaseSchedule(),
            "options": {"policy": {"catch_up": "skip"}},
        },
    }

    with pytest.raises(ImproperlyConfigured) as refused:
        schedules.check_beat_schedule(beat_schedule)

    message = str(refused.value)
    for expected in (
        "'bad values': catch_up must be one of once, skip, got 'twice'",
        "'bad values': overlap must be one of allow, skip, got 'queue'",
        "'bad values': deadline must be a positive number of seconds, got -1",
        "'bad values': unknown policy key 'retries'",
        "'expiring': option 'expires' is not allowed; use the policy's deadline",
        "'naïve name': the name must be 1-200 ASCII letters",
        "'custom': a policy needs an interval or crontab schedule",
    ):
        assert expected in message, f"{expected!r} not in {message}"
    assert "'fine'" not in message


def test_the_example_apps_entries_declare_their_policies(settings) -> None:
    policies = {
        name: schedules.EntryPolicy.of(spec.get("options"))
        for name, spec in settings.CELERY_BEAT_SCHEDULE.items()
    }
    assert policies["record-heartbeat"] == schedules.EntryPolicy("once", "skip", None)
    assert policies["requeue-stale-signups"] == schedules.EntryPolicy(
        "skip", "skip", float(settings.SIGNUP_SWEEP_SECONDS)
    )


# --- Beat ---------------------------------------------------------------------------------------------

INTERVAL = timedelta(seconds=60)


@pytest.fixture
def beat_redis(redis_url: str) -> Iterator[redis.Redis]:
    """The Redis Beat and the broker use, without RedBeat's or the records' keys, nor queued messages."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)

    def clean() -> None:
        client.delete(*client.scan_iter("redbeat:*"), *client.scan_iter("schedules:*"), *app_contract.QUEUES)

    clean()
    yield client
    clean()


@pytest.fixture
def beat_schedule(beat_redis: redis.Redis, settings: Any) -> dict[str, Any]:
    """The Beat schedule (CELERY_BEAT_SCHEDULE, which the Celery app reads), replaced by the test's
    entries for the test's duration."""
    settings.CELERY_BEAT_SCHEDULE = {}
    return settings.CELERY_BEAT_SCHEDULE


def away_since(name: str, last_run_at: datetime) -> None:
    """Make Beat's stored entry say it last ran at `last_run_at`, as if Beat had been away since."""
    key = RedBeatSchedulerEntry.generate_key(celery_app, name)
    RedBeatSchedulerEntry.from_key(key, app=celery_app).reschedule(last_run_at=last_run_at)


def sent_messages(client: redis.Redis) -> dict[str, list[dict[str, Any]]]:
    """The messages Beat published, by schedule entry: their headers."""
    sent: dict[str, list[dict[str, Any]]] = {}
    for raw in client.lrange(app_contract.DEFAULT_QUEUE, 0, -1):
        headers = json.loads(raw)["headers"]
        sent.setdefault(headers[SCHEDULE_ENTRY_HEADER], []).append(headers)
    return sent


def one_tick(entries: dict[str, Any], away: dict[str, datetime]) -> HeartbeatRedBeatScheduler:
    scheduler = HeartbeatRedBeatScheduler(app=celery_app)
    for name, last_run_at in away.items():
        away_since(name, last_run_at)
    scheduler.tick()
    return scheduler


def test_beat_makes_up_missed_runs_once_and_skips_the_others_by_policy(beat_schedule, beat_redis) -> None:
    """Beat was away for 200 s; each entry runs every 60 s, so three runs were missed, the latest
    20 s ago. `once` runs one (for the first missed time) and counts two as skipped; `skip` and a
    deadline of 10 s run none and count three; `once` with a 30 s deadline still runs the latest."""
    beat_schedule.update(
        {
            "once": {
                "task": HEARTBEAT_TASK,
                "schedule": INTERVAL,
                "options": {"policy": {"catch_up": "once"}},
            },
            "skip": {
                "task": HEARTBEAT_TASK,
                "schedule": INTERVAL,
                "options": {"policy": {"catch_up": "skip", "deadline": 10}},
            },
            "once-within-30s": {
                "task": HEARTBEAT_TASK,
                "schedule": INTERVAL,
                "options": {"policy": {"catch_up": "once", "deadline": 30}},
            },
        }
    )
    last_run = datetime.now(UTC) - timedelta(seconds=200)

    scheduler = one_tick(beat_schedule, {name: last_run for name in beat_schedule})
    scheduler.close()

    sent = sent_messages(beat_redis)
    records = schedule_state.read_records(beat_redis, beat_schedule)
    assert sorted(sent) == ["once", "once-within-30s"], f"entries Beat sent: {sorted(sent)}"
    [once] = sent["once"]
    assert once[SCHEDULED_FOR_HEADER] == (last_run + INTERVAL).isoformat(), (
        "the run stands for the first miss"
    )
    assert once.get("expires") is None, "a run of a `once` entry without deadline never expires"
    assert (records["once"].skipped, records["skip"].skipped, records["once-within-30s"].skipped) == (2, 3, 2)
    latest_missed = last_run + 3 * INTERVAL
    [within] = sent["once-within-30s"]
    expires = datetime.fromisoformat(within["expires"])
    assert abs((expires - (latest_missed + timedelta(seconds=30))).total_seconds()) < 0.01, (
        f"the message expires at the latest missed time plus the deadline, got {expires}"
    )
    skipped = RedBeatSchedulerEntry.from_key(
        RedBeatSchedulerEntry.generate_key(celery_app, "skip"), celery_app
    )
    due, next_in = skipped.is_due()
    regular = (latest_missed + INTERVAL - datetime.now(UTC)).total_seconds()
    assert not due and abs(next_in - regular) < 1, "a skipping entry waits for its next regular time"


def test_beat_counts_missed_crontab_runs_from_its_own_times(beat_schedule, beat_redis) -> None:
    beat_schedule["every-minute"] = {
        "task": HEARTBEAT_TASK,
        "schedule": crontab(),
        "options": {"policy": {"catch_up": "once"}},
    }
    this_minute = datetime.now(UTC).replace(second=0, microsecond=0)
    if (datetime.now(UTC) - this_minute).total_seconds() > 55:
        time.sleep(6)  # keep the tick inside the minute the runs are counted in
        this_minute += MINUTE

    one_tick(beat_schedule, {"every-minute": this_minute - 3 * MINUTE}).close()

    [sent] = sent_messages(beat_redis)["every-minute"]
    assert sent[SCHEDULED_FOR_HEADER] == (this_minute - 2 * MINUTE).isoformat()
    assert schedule_state.read_records(beat_redis, ["every-minute"])["every-minute"].skipped == 2


def test_an_entry_on_time_runs_and_skips_nothing(beat_schedule, beat_redis) -> None:
    beat_schedule["on-time"] = {
        "task": HEARTBEAT_TASK,
        "schedule": INTERVAL,
        "options": {"policy": {"catch_up": "skip", "deadline": 1}},
    }

    one_tick(beat_schedule, {"on-time": datetime.now(UTC) - INTERVAL}).close()

    [sent] = sent_messages(beat_redis)["on-time"]
    assert "policy" not in json.dumps(sent), "the policy is not a message option"
    record = schedule_state.read_records(beat_redis, ["on-time"])["on-time"]
    assert record.skipped == 0 and record.sent_at is not None and record.scheduled_since is not None


def test_beat_deletes_the_records_of_entries_removed_from_the_schedule(beat_schedule, beat_redis) -> None:
    beat_schedule["kept"] = {"task": HEARTBEAT_TASK, "schedule": INTERVAL}
    beat_schedule["removed"] = {"task": HEARTBEAT_TASK, "schedule": INTERVAL}
    HeartbeatRedBeatScheduler(app=celery_app).close()
    assert beat_redis.exists(schedule_state.redis_key("record", "removed"))

    del beat_schedule["removed"]
    HeartbeatRedBeatScheduler(app=celery_app).close()

    assert not beat_redis.exists(schedule_state.redis_key("record", "removed"))
    assert beat_redis.exists(schedule_state.redis_key("record", "kept"))


# --- manage.py schedules ----------------------------------------------------------------------------


def seed_record(client: redis.Redis, entry: str, **fields: float | str) -> None:
    client.hset(schedule_state.redis_key("record", entry), mapping=fields)


def run_schedules_command(*arguments: str) -> str:
    out = StringIO()
    call_command("schedules", *arguments, stdout=out)
    return out.getvalue()


def test_the_schedules_command_lists_each_entrys_runs_and_state(beat_schedule, beat_redis) -> None:
    now = time.time()
    spec = {"task": HEARTBEAT_TASK, "schedule": INTERVAL}  # late after max(2 x 60 s, 300 s)
    beat_schedule.update({name: spec for name in ("ok", "failing", "late", "skipped", "never-scheduled")})
    HeartbeatRedBeatScheduler(app=celery_app).close()  # Beat stores the entries and their next times
    beat_redis.delete(schedule_state.redis_key("record", "never-scheduled"))
    seed_record(beat_redis, "ok", started_at=now - 10, succeeded_at=now - 9)
    seed_record(beat_redis, "failing", succeeded_at=now - 100, failed_at=now - 5, failure="IntegrityError")
    seed_record(beat_redis, "late", succeeded_at=now - 301)
    seed_record(beat_redis, "skipped", succeeded_at=now - 100, skipped=3, skipped_at=now - 50)

    [line] = run_schedules_command("--json").splitlines()
    reports = {report["entry"]: report for report in json.loads(line)["entries"]}

    states = {name: report["state"] for name, report in reports.items()}
    assert states == {
        "ok": "ok",
        "failing": "failing",
        "late": "late",
        "skipped": "skipped",
        "never-scheduled": "late",
    }
    ok = reports["ok"]
    assert ok["period_seconds"] == 60 and ok["stale_after_seconds"] == 300
    assert ok["last_success"] == datetime.fromtimestamp(now - 9, UTC).isoformat()
    assert datetime.fromisoformat(ok["next_run"]) > datetime.now(UTC), "Beat's next time for the entry"
    assert reports["failing"]["failure"] == "IntegrityError"
    assert reports["skipped"]["skipped"] == 3
    # The stack's own alarm thresholds judge "late" as its alarms do.
    stricter = run_schedules_command("--json", "--stale-periods", "1", "--stale-minimum-seconds", "60")
    stricter = json.loads(stricter)["entries"]
    assert {report["entry"]: report["state"] for report in stricter}["skipped"] == "late"


def test_the_schedules_table_has_a_row_per_entry(beat_schedule, beat_redis) -> None:
    beat_schedule["sweep"] = {
        "task": HEARTBEAT_TASK,
        "schedule": 30,
        "options": {"policy": {"catch_up": "skip", "deadline": 30, "overlap": "skip"}},
    }

    header, row = run_schedules_command().splitlines()

    assert header.split() == [
        "entry",
        "schedule",
        "policy",
        "last",
        "run",
        "next",
        "run",
        "last",
        "success",
        "state",
    ]
    assert row.startswith("sweep  every 30 s  catch_up skip (30 s), overlap skip")
    assert row.split()[-1] == "late", "never scheduled by Beat: the entry's alarm sees no data"
