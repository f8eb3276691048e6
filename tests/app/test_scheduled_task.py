"""Runs of schedule entries in a real worker: the overlap lock, and the outcome each run records.

The test publishes messages as Beat does (the entry and slot headers, core.beat) for the example
app's entries, both `overlap: skip`, to a worker process with two pool processes. Faults are real:
a lock on a table makes the sweep slow, a CHECK constraint makes the heartbeat fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import redis

from config.celery import app as celery_app
from core import schedule_state
from core.beat import SCHEDULE_ENTRY_HEADER, SCHEDULED_FOR_HEADER
from infra import app_contract
from signups.models import PeriodicRun
from testkit.processes import AppProcess, container_env, start_worker, wait_for

SWEEP, SWEEP_TASK = "requeue-stale-signups", "signups.tasks.requeue_stale_signups"
HEARTBEAT, HEARTBEAT_TASK = "record-heartbeat", "signups.tasks.record_heartbeat"
HARD_TIME_LIMIT = 300  # CELERY_TASK_TIME_LIMIT's default; the container environment keeps it


@pytest.fixture
def records(redis_url: str, broker) -> Iterator[redis.Redis]:
    """The entries' records and locks, none before the test and none left after it."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    for key in client.scan_iter("schedules:*"):
        client.delete(key)
    yield client
    for key in client.scan_iter("schedules:*"):
        client.delete(key)
    client.close()


@pytest.fixture
def worker(test_database_url: str, redis_url: str, records, tmp_path: Path) -> Iterator[AppProcess]:
    env = container_env(test_database_url, redis_url, WORKER_HEARTBEAT_FILE=str(tmp_path / "heartbeat"))
    process = start_worker(env, queues=[app_contract.DEFAULT_QUEUE], concurrency=2)
    yield process
    process.stop()


@pytest.fixture
def database(test_database_url: str) -> Iterator[psycopg.Connection]:
    """A session of its own on the worker's database, for the faults."""
    with psycopg.connect(test_database_url) as connection:
        yield connection


def send_as_beat(task: str, entry: str, slot: datetime, **options: object) -> None:
    headers = {SCHEDULE_ENTRY_HEADER: entry, SCHEDULED_FOR_HEADER: slot.isoformat()}
    celery_app.send_task(task, headers=headers, queue=app_contract.DEFAULT_QUEUE, **options)


def record_of(client: redis.Redis, entry: str) -> schedule_state.EntryRecord:
    return schedule_state.read_records(client, [entry])[entry]


def wait_for_record(
    client: redis.Redis, entry: str, done: Callable[[schedule_state.EntryRecord], bool], what: str, worker
) -> schedule_state.EntryRecord:
    return wait_for(
        lambda: (record := record_of(client, entry)) and done(record) and record,
        timeout=30,
        message=f"{what}; {worker.describe()}",
    )


@pytest.mark.django_db(transaction=True)
def test_a_run_does_not_start_while_the_previous_run_of_its_entry_still_runs(
    worker, records, database
) -> None:
    first_slot = datetime.now(UTC)
    database.execute("LOCK TABLE signups_signup IN ACCESS EXCLUSIVE MODE")  # the sweep waits for it
    send_as_beat(SWEEP_TASK, SWEEP, first_slot)
    wait_for_record(
        records, SWEEP, lambda r: r.started_at is not None, "the first sweep did not start", worker
    )

    lock = schedule_state.redis_key("lock", SWEEP)
    owner = records.get(lock)
    assert owner, "the running sweep holds its entry's lock"
    assert HARD_TIME_LIMIT - 10 < records.pttl(lock) / 1000 <= HARD_TIME_LIMIT, (
        "the lock lives as long as the hard limit"
    )
    send_as_beat(SWEEP_TASK, SWEEP, first_slot + timedelta(seconds=30))
    wait_for_record(records, SWEEP, lambda r: r.overlapped == 1, "the second sweep was not counted", worker)
    assert records.get(lock) == owner, "the run that did not start left the holder's lock alone"

    database.rollback()  # the first sweep goes on
    record = wait_for_record(records, SWEEP, lambda r: r.succeeded_at is not None, "no success", worker)

    assert record.overlapped_at is not None and record.overlapped_unpublished == 1
    assert not records.exists(lock), "the owner released its lock when the run ended"
    output = worker.output()
    assert output.count(f"schedule entry {SWEEP}: the run for") == 2, output
    assert "the previous run still runs" in output and "succeeded after" in output


@pytest.mark.django_db(transaction=True)
def test_a_lock_held_by_another_run_is_neither_taken_nor_released(worker, records) -> None:
    lock = schedule_state.redis_key("lock", HEARTBEAT)
    records.set(lock, "another-run", px=20_000)

    send_as_beat(HEARTBEAT_TASK, HEARTBEAT, datetime.now(UTC))

    wait_for_record(records, HEARTBEAT, lambda r: r.overlapped == 1, "the run was not counted", worker)
    assert records.get(lock) == "another-run"
    assert not PeriodicRun.objects.exists(), "the heartbeat did not run"


@pytest.mark.django_db(transaction=True)
def test_each_run_records_its_failure_or_its_success(worker, records, database) -> None:
    database.execute("ALTER TABLE signups_periodicrun ADD CONSTRAINT refuse_runs CHECK (false) NOT VALID")
    database.commit()
    try:
        send_as_beat(HEARTBEAT_TASK, HEARTBEAT, datetime.now(UTC))
        failed = wait_for_record(records, HEARTBEAT, lambda r: r.failed_at is not None, "no failure", worker)
    finally:
        database.execute("ALTER TABLE signups_periodicrun DROP CONSTRAINT refuse_runs")
        database.commit()
    # PeriodicRun.objects.record retries the refused insert, then gives up.
    assert failed.failure == "RuntimeError" and failed.succeeded_at is None
    assert not records.exists(schedule_state.redis_key("lock", HEARTBEAT)), "a failed run releases its lock"

    send_as_beat(HEARTBEAT_TASK, HEARTBEAT, datetime.now(UTC))

    succeeded = wait_for_record(
        records, HEARTBEAT, lambda r: r.succeeded_at is not None, "no success", worker
    )
    assert succeeded.succeeded_at > succeeded.failed_at
    assert PeriodicRun.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_run_past_its_deadline_in_the_queue_is_counted_as_skipped(worker, records) -> None:
    slot = datetime.now(UTC) - timedelta(seconds=10)

    send_as_beat(HEARTBEAT_TASK, HEARTBEAT, slot, expires=slot + timedelta(seconds=5))

    record = wait_for_record(
        records, HEARTBEAT, lambda r: r.skipped == 1, "the expired run was not counted", worker
    )
    assert record.started_at is None and record.skipped_unpublished == 1
    assert not PeriodicRun.objects.exists()
    assert "was not started within its deadline" in worker.output()


def test_a_run_that_cannot_ask_for_the_lock_does_not_start(settings, records) -> None:
    """Redis does not answer: an `overlap: skip` run fails instead of running unguarded."""
    from core.scheduled_task import ScheduleLockUnavailableError
    from signups.tasks import record_heartbeat

    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1

    result = record_heartbeat.apply(headers={SCHEDULE_ENTRY_HEADER: HEARTBEAT})

    assert isinstance(result.result, ScheduleLockUnavailableError), result.result
    assert "the run does not start" in str(result.result)
