"""Schedules you can trust: each Beat entry's runs under the faults of a real deployment.

The example app's two entries run on the stack's short timings: the heartbeat every 2 s
(`catch_up: once`, `overlap: skip`) and the signup sweep every second (`catch_up: skip` with a
one-second deadline, `overlap: skip`). Each scenario injects its fault into real Beat, worker,
Redis and PostgreSQL processes, then accounts for every run that fell due (schedule_ledger.py):
none missed, none run twice, none overlapping, each skip counted by the product's own counters.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from django.conf import settings
from redbeat.schedulers import RedBeatSchedulerEntry

from core import schedule_state
from core.schedules import EntryPolicy
from infra import app_contract
from queuemetrics import schema
from testkit.processes import wait_for
from tests.e2e.ledger import Scenario
from tests.e2e.schedule_ledger import ScheduleResult, entry_events, schedule_result
from tests.e2e.services import wait_until
from tests.e2e.stack import SHORT_TIMINGS, AppStack, Container
from tests.e2e.test_beat_faults import LOCK_TIMEOUT, STOP_TIMEOUT

HEARTBEAT, SWEEP = "record-heartbeat", "requeue-stale-signups"
INTERVALS = {
    HEARTBEAT: float(SHORT_TIMINGS[app_contract.PERIODIC_HEARTBEAT_SECONDS]),
    SWEEP: float(SHORT_TIMINGS[app_contract.SIGNUP_SWEEP_SECONDS]),
}
# The floor of "stale" on these timings (5 minutes in production): 4 heartbeats.
STALE_MINIMUM_SECONDS = 8.0
DRAIN_SECONDS = 30


def policy(entry: str) -> EntryPolicy:
    """The entry's policy as the app declares it (config/settings/base.py)."""
    return EntryPolicy.of(settings.CELERY_BEAT_SCHEDULE[entry].get("options"))


def next_due(stack: AppStack, entry: str) -> float:
    """When Beat will next send `entry` (epoch seconds), from the last run it stored in Redis."""
    meta = stack.redis.client().hget(f"redbeat:{entry}", "meta")
    last_run_at = RedBeatSchedulerEntry.decode_meta(meta)["last_run_at"]
    return last_run_at.timestamp() + INTERVALS[entry]


def sleep_until(moment: float) -> None:
    # The fault's timing against the schedule is the point of the scenario, not a wait for state.
    time.sleep(max(0.0, moment - time.time()))


def runs_of(scenario: Scenario, entry: str) -> int:
    return sum(event.outcome == "succeeded" for event in entry_events(scenario.processes, entry))


def wait_for_runs(scenario: Scenario, entry: str, more: int, timeout: float = 30) -> None:
    target = runs_of(scenario, entry) + more
    wait_until(
        lambda: runs_of(scenario, entry) >= target,
        timeout,
        f"{entry} did not run {more} more time(s)",
        scenario.processes,
    )


def account(scenario: Scenario) -> dict[str, ScheduleResult]:
    """Once Beat has stopped and the workers have emptied the queue: every entry's ledger."""
    stack = scenario.stack
    assert not any(p.spec.role == "beat" and p.is_running() for p in scenario.processes), "stop Beat first"
    wait_until(
        lambda: (
            stack.broker_backlog()[app_contract.DEFAULT_QUEUE] == 0 and not stack.broker_backlog()["unacked"]
        ),
        DRAIN_SECONDS,
        "periodic messages still in the broker",
        scenario.processes,
    )

    def results() -> dict[str, ScheduleResult]:
        records = schedule_state.read_records(stack.redis.client(), INTERVALS)
        return {
            entry: schedule_result(
                scenario.name,
                entry,
                interval,
                (policy(entry).catch_up, policy(entry).overlap),
                entry_events(scenario.processes, entry),
                records[entry],
            )
            for entry, interval in INTERVALS.items()
        }

    # A dropped message is acknowledged before its skip is logged and counted: let both land.
    deadline = time.monotonic() + 5
    settled = results()
    while not all(result.counters_agree for result in settled.values()) and time.monotonic() < deadline:
        time.sleep(0.5)
        settled = results()
    for result in settled.values():
        scenario.record_schedule(result)
    return settled


def assert_sound(results: dict[str, ScheduleResult]) -> None:
    for result in results.values():
        assert result.sound, result.problems()
        assert result.slots >= 3, f"too few runs to judge: {result.problems()}"


def made_up_late(scenario: Scenario, entry: str, slot: float) -> float:
    """How late after `slot` a worker met the run Beat sent for it (it must have sent it)."""
    met = [
        event.started_at
        for event in entry_events(scenario.processes, entry)
        if event.slot is not None and abs(event.slot.timestamp() - slot) < 1e-3 and event.started_at
    ]
    assert met, f"no run of {entry} for the slot at {datetime.fromtimestamp(slot, UTC)} reached a worker"
    return min(met) - slot


def stop(beat: Container) -> None:
    assert not beat.stop_like_ecs(STOP_TIMEOUT).killed, f"Beat did not exit on SIGTERM; {beat.describe()}"


@pytest.mark.slow
def test_beat_killed_half_a_second_before_a_tick(scenario: Scenario) -> None:
    """SIGKILL (out of memory, a lost host) just before the heartbeat's time; its service starts
    another Beat, which waits for the dead one's lock to expire. The heartbeat's missed time runs
    once that Beat is up (catch_up: once), the runs missed meanwhile are counted as skipped."""
    stack = scenario.stack
    scenario.start_worker()
    service = scenario.run_beat_service()
    service.task.wait_for_log("Acquired lock")
    wait_for_runs(scenario, HEARTBEAT, 3)

    due = next_due(stack, HEARTBEAT)
    sleep_until(due - 0.5)
    killed = service.task
    killed.kill()
    wait_until(
        lambda: service.replacements == 1 and service.task.is_running(),
        30,
        "the service did not start another Beat",
        [killed],
    )
    service.task.wait_for_log("Acquired lock", timeout=LOCK_TIMEOUT + 30)
    wait_for_runs(scenario, HEARTBEAT, 3)
    service.stop()
    stop(service.task)

    results = account(scenario)
    assert_sound(results)
    assert made_up_late(scenario, HEARTBEAT, due) >= LOCK_TIMEOUT - 5, (
        "the missed time ran once Beat was back"
    )
    assert results[HEARTBEAT].skipped >= 5, results[HEARTBEAT].problems()


@pytest.mark.slow
def test_two_beats_during_a_deploy_at_the_scheduled_tick(scenario: Scenario) -> None:
    """A deployment starts the new Beat before it stops the old one, which gets SIGTERM just as the
    heartbeat is due. The new Beat takes over within a loop; no time runs twice, none is lost."""
    stack = scenario.stack
    scenario.start_worker()
    old = scenario.start_beat()
    old.wait_for_log("Acquired lock")
    wait_for_runs(scenario, HEARTBEAT, 3)
    new = scenario.start_beat()
    new.wait_for_log("celery beat")  # up, and waiting for the lock

    due = next_due(stack, HEARTBEAT)
    sleep_until(due - 0.1)
    stop(old)
    new.wait_for_log("Acquired lock", timeout=15)
    wait_for_runs(scenario, HEARTBEAT, 3)
    stop(new)

    assert_sound(account(scenario))
    with stack.postgres.connect() as connection:
        doubled = connection.execute("SELECT count(*) FROM signups_periodicrun WHERE firing > 1").fetchone()
    assert doubled == (0,), "a heartbeat slot was recorded twice"


@pytest.mark.slow
def test_redis_restarted_across_a_tick(scenario: Scenario) -> None:
    """Redis saves, stops for 5 s (two heartbeats, five sweeps) and comes back from its dump, as a
    failover does. Beat sends nothing meanwhile and makes the heartbeat up once Redis answers."""
    stack = scenario.stack
    scenario.start_worker()
    beat = scenario.start_beat()
    beat.wait_for_log("Acquired lock")
    wait_for_runs(scenario, HEARTBEAT, 3)

    due = next_due(stack, HEARTBEAT)
    sleep_until(due - 1)
    stack.redis.restart_keeping_data(down_seconds=5)
    wait_for_runs(scenario, HEARTBEAT, 3, timeout=60)
    stop(beat)

    results = account(scenario)
    assert_sound(results)
    assert "Redis unavailable" in beat.output(), beat.describe()
    assert made_up_late(scenario, HEARTBEAT, due) >= 4, "the time Redis was down for ran once it was back"


def test_the_pool_at_zero_when_the_tick_fires(scenario: Scenario) -> None:
    """No worker while Beat sends (a pool scaled to zero, waking up). The heartbeat's messages wait
    for the first worker however long it takes (catch_up: once, no deadline); the sweep's expire
    after their one-second deadline and are counted as skipped."""
    stack = scenario.stack
    beat = scenario.start_beat()
    beat.wait_for_log("Acquired lock")
    wait_until(
        lambda: stack.broker_backlog()[app_contract.DEFAULT_QUEUE] >= 12,
        30,
        "Beat did not send while the pool was at zero",
        [beat],
    )

    scenario.start_worker()
    wait_for_runs(scenario, HEARTBEAT, 6)
    stop(beat)

    results = account(scenario)
    assert_sound(results)
    heartbeat, sweep = results[HEARTBEAT], results[SWEEP]
    assert heartbeat.skipped == 0, f"a heartbeat waited for the pool and was dropped: {heartbeat.problems()}"
    assert sweep.skipped >= 3, f"sweeps waited past their deadline and were not counted: {sweep.problems()}"


@contextmanager
def signups_locked(stack: AppStack) -> Iterator[list[int]]:
    """Hold the signups table (a migration, a long report): the sweep waits for it. Yields how many
    sweep queries wait on it at once, sampled meanwhile."""
    waiting: list[int] = []
    stop_sampling = threading.Event()

    def sample() -> None:
        with stack.postgres.connect() as observer:
            while not stop_sampling.wait(0.1):
                waiting.append(
                    observer.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query LIKE '%signups_signup%NULLS FIRST%'"
                    ).fetchone()[0]
                )

    with stack.postgres.connect() as holder:
        holder.autocommit = False
        holder.execute("LOCK TABLE signups_signup IN ACCESS EXCLUSIVE MODE")
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            yield waiting
        finally:
            holder.rollback()
            stop_sampling.set()
            sampler.join(5)


def test_a_run_longer_than_its_interval(scenario: Scenario) -> None:
    """The sweep (every second) waits 6 s for a table lock. The sweeps due meanwhile do not start
    while it runs (overlap: skip): never two at once, in the logs and in PostgreSQL; each counted."""
    stack = scenario.stack
    scenario.start_worker()
    beat = scenario.start_beat()
    beat.wait_for_log("Acquired lock")
    wait_for_runs(scenario, SWEEP, 2)

    with signups_locked(stack) as waiting:
        time.sleep(6)  # the lock is held this long: the length of the slow run under test
    wait_for_runs(scenario, SWEEP, 2)
    stop(beat)

    results = account(scenario)
    assert_sound(results)
    sweep = results[SWEEP]
    assert max(waiting) == 1, f"sweeps waiting on the table at once, sampled every 0.1 s: {waiting}"
    assert sweep.overlapped >= 3, f"the sweeps due meanwhile were not refused: {sweep.problems()}"
    long_runs = [
        e
        for e in entry_events(scenario.processes, SWEEP)
        if e.outcome == "succeeded" and e.finished_at - e.started_at > 5
    ]
    assert len(long_runs) == 1, "one sweep ran the whole time the table was locked"


def cloudwatch(stack: AppStack):
    publisher = stack.containers.one("queue-metrics")
    return boto3.client(
        "cloudwatch",
        region_name=publisher.environment[app_contract.AWS_REGION],
        endpoint_url=stack.aws_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def seconds_since_success(stack: AppStack, entry: str) -> float | None:
    """The newest PeriodicTaskSecondsSinceSuccess the publisher sent (moto's CloudWatch) for `entry`."""
    namespace = stack.containers.one("queue-metrics").environment[app_contract.QUEUE_METRICS_NAMESPACE]
    metric = schema.PERIODIC_TASK_SECONDS_SINCE_SUCCESS
    query = {
        "Namespace": namespace,
        "MetricName": metric.name,
        "Dimensions": [
            {"Name": name, "Value": value} for name, value in schema.dimensions(metric, entry=entry).items()
        ],
    }
    now = datetime.now(UTC)
    values = cloudwatch(stack).get_metric_data(
        MetricDataQueries=[{"Id": "m", "MetricStat": {"Metric": query, "Period": 1, "Stat": "Maximum"}}],
        StartTime=now - timedelta(seconds=5),
        EndTime=now + timedelta(seconds=5),
        ScanBy="TimestampDescending",
    )["MetricDataResults"][0]["Values"]
    return values[0] if values else None


def schedules_report(stack: AppStack) -> dict[str, dict]:
    """`manage.py schedules --json` as a one-off task (python -m infra.ops schedules) prints it."""
    output = stack.run_command("schedules", "--json").output()
    line = next(line for line in output.splitlines() if line.startswith('{"entries"'))
    return {report["entry"]: report for report in json.loads(line)["entries"]}


def test_a_failing_entry_crosses_its_staleness_threshold(scenario: Scenario) -> None:
    """The heartbeat's inserts are refused (a CHECK constraint): every run fails. The seconds since
    its last success, as the publisher sends them to CloudWatch, pass max(2 x 2 s, 8 s), the
    threshold its alarm compares with; `manage.py schedules` says it is failing. Once the inserts
    are accepted again the next run succeeds and the metric drops back."""
    stack = scenario.stack
    threshold = schema.stale_after_seconds(
        INTERVALS[HEARTBEAT], schema.STALE_AFTER_PERIODS, STALE_MINIMUM_SECONDS
    )
    scenario.start_worker()
    beat = scenario.start_beat()
    beat.wait_for_log("Acquired lock")
    wait_for_runs(scenario, HEARTBEAT, 2)
    wait_for(
        lambda: (value := seconds_since_success(stack, HEARTBEAT)) is not None and value < threshold,
        15,
        "the publisher did not report the heartbeat's recent success",
    )

    with stack.postgres.connect() as connection:
        connection.execute(
            "ALTER TABLE signups_periodicrun ADD CONSTRAINT refuse_runs CHECK (false) NOT VALID"
        )
    try:
        wait_for(
            lambda: (seconds_since_success(stack, HEARTBEAT) or 0) > threshold,
            threshold + 20,
            f"the heartbeat's staleness did not pass {threshold} s while it failed",
        )
        report = schedules_report(stack)[HEARTBEAT]
        assert report["state"] == "failing" and report["failure"] == "RuntimeError", report
    finally:
        with stack.postgres.connect() as connection:
            connection.execute("ALTER TABLE signups_periodicrun DROP CONSTRAINT refuse_runs")
    wait_for(
        lambda: (value := seconds_since_success(stack, HEARTBEAT)) is not None and value < threshold,
        20,
        "the heartbeat's staleness did not drop after it succeeded again",
    )
    stop(beat)

    results = account(scenario)
    assert_sound(results)
    assert schedules_report(stack)[HEARTBEAT]["state"] == "ok"
