"""Periodic work: Beat (celery-redbeat) as a real process, the run record, the requeue sweep."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
import redis
from django.utils import timezone

from infra import app_contract
from signups.models import PeriodicRun, Signup
from signups.tasks import PUBLISH_MARGIN, enqueue_welcome_email, requeue_stale_signups
from testkit.processes import AppProcess, RedisServer, container_env, start_beat, start_worker, wait_for

HEARTBEAT_TASK = "signups.tasks.record_heartbeat"
INTERVAL_SECONDS = 2


@pytest.mark.django_db
def test_a_second_firing_of_the_same_slot_is_recorded_as_firing_2() -> None:
    slot = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    first = PeriodicRun.objects.record(HEARTBEAT_TASK, slot, task_id="a", worker="w1")
    second = PeriodicRun.objects.record(HEARTBEAT_TASK, slot, task_id="b", worker="w2")
    redelivered = PeriodicRun.objects.record(HEARTBEAT_TASK, slot, task_id="a", worker="w3")

    assert (first.firing, second.firing) == (1, 2)
    assert redelivered.pk == first.pk, "a redelivered message is the same firing, not a new one"
    assert list(PeriodicRun.objects.filter(firing__gt=1).values_list("task_id", flat=True)) == ["b"]


@pytest.mark.django_db
def test_sweep_requeues_signups_that_never_reached_the_broker(broker, settings) -> None:
    long_ago = timezone.now() - timedelta(seconds=settings.SIGNUP_REQUEUE_AFTER_SECONDS + 1)
    stranded = Signup.objects.create(email="stranded@example.com")
    just_created = Signup.objects.create(email="new@example.com")
    already_sent = Signup.objects.create(email="sent@example.com", status=Signup.Status.SENT)
    Signup.objects.filter(pk__in=[stranded.pk, already_sent.pk]).update(created_at=long_ago)

    assert requeue_stale_signups.apply().get() == 1

    stranded.refresh_from_db()
    assert stranded.enqueued_at is not None
    assert broker.llen(app_contract.EMAIL_QUEUE) == 1
    just_created.refresh_from_db()
    assert just_created.enqueued_at is None, "a signup whose request may still be publishing is left alone"


@pytest.mark.django_db
def test_sweep_publishes_retries_that_are_due_and_only_those(broker) -> None:
    now = timezone.now()
    past, future = now - timedelta(seconds=1), now + timedelta(hours=1)
    due = Signup.objects.create(email="due@example.com", attempts=1, next_attempt_at=past)
    later = Signup.objects.create(email="later@example.com", attempts=1, next_attempt_at=future)
    out = Signup.objects.create(email="out@example.com", attempts=1, next_attempt_at=past, enqueued_at=now)
    failed = Signup.objects.create(email="failed@example.com", status=Signup.Status.FAILED, attempts=9)

    assert requeue_stale_signups.apply().get() == 1

    assert broker.llen(app_contract.EMAIL_QUEUE) == 1
    due.refresh_from_db()
    assert due.enqueued_at is not None
    for untouched in (later, out, failed):
        enqueued_before = untouched.enqueued_at
        untouched.refresh_from_db()
        assert untouched.enqueued_at == enqueued_before, untouched


@pytest.mark.django_db
def test_sweep_publishes_a_message_lost_after_it_was_accepted(broker, settings) -> None:
    lost_at = timezone.now() - timedelta(
        seconds=settings.CELERY_VISIBILITY_TIMEOUT + settings.SIGNUP_REQUEUE_AFTER_SECONDS + 1
    )
    Signup.objects.create(email="lost@example.com", enqueued_at=lost_at)

    assert requeue_stale_signups.apply().get() == 1


@pytest.mark.django_db
def test_sweep_finds_a_lost_message_within_minutes_when_nothing_older_waits(broker, settings) -> None:
    """A worker popped the message and died before `unacked` had it, or Redis refused that write:
    past a hard time limit plus the requeue delay (10 minutes, not the visibility timeout's hour),
    a signup whose message cannot be waiting is published again."""
    grace = settings.CELERY_TASK_TIME_LIMIT + settings.SIGNUP_REQUEUE_AFTER_SECONDS
    assert grace * 6 <= settings.CELERY_VISIBILITY_TIMEOUT
    now = timezone.now()
    lost = Signup.objects.create(email="lost@example.com", enqueued_at=now - timedelta(seconds=grace + 1))
    starting = Signup.objects.create(email="starting@example.com", enqueued_at=now - timedelta(seconds=60))

    assert requeue_stale_signups.apply().get() == 1

    lost.refresh_from_db()
    assert lost.enqueued_at > now, "published again"
    starting.refresh_from_db()
    assert starting.enqueued_at < now, "its message may still be about to start on a busy worker"


@pytest.mark.django_db
def test_sweep_leaves_signups_whose_message_still_waits_behind_an_older_one(broker, settings) -> None:
    settings.CELERY_TASK_TIME_LIMIT, settings.SIGNUP_REQUEUE_AFTER_SECONDS = 0, 0  # no grace
    oldest = Signup.objects.create(email="oldest@example.com")
    before = timezone.now() - PUBLISH_MARGIN - timedelta(seconds=1)
    assert enqueue_welcome_email(oldest.pk)  # the oldest message waiting, no worker takes it
    # Enqueued after the oldest waiting message was published (within the margin: its own would be).
    waiting = Signup.objects.create(email="waiting@example.com", enqueued_at=before + timedelta(seconds=2))
    lost = Signup.objects.create(email="lost@example.com", enqueued_at=before)

    assert requeue_stale_signups.apply().get() == 1

    lost.refresh_from_db()
    assert lost.enqueued_at > before, "enqueued before the oldest waiting message: not waiting, lost"
    enqueued = waiting.enqueued_at
    waiting.refresh_from_db()
    assert waiting.enqueued_at == enqueued, "enqueued after the oldest waiting message: it waits too"
    assert broker.llen(app_contract.EMAIL_QUEUE) == 2


@pytest.fixture
def periodic_env(test_database_url: str, redis_url: str, tmp_path: Path, broker) -> Iterator[dict[str, str]]:
    """Environment for worker and Beat, with a fresh redbeat schedule and lock."""
    client = redis.Redis.from_url(redis_url)
    client.delete(*(client.keys("redbeat:*") or ["redbeat::lock"]))
    yield container_env(
        test_database_url,
        redis_url,
        BEAT_HEARTBEAT_FILE=str(tmp_path / "beat-heartbeat"),
        WORKER_HEARTBEAT_FILE=str(tmp_path / "worker-heartbeat"),
        **{app_contract.PERIODIC_HEARTBEAT_SECONDS: str(INTERVAL_SECONDS)},
    )
    client.delete(*(client.keys("redbeat:*") or ["redbeat::lock"]))
    client.close()


@pytest.fixture
def processes() -> Iterator[Callable[[AppProcess], AppProcess]]:
    """Registers a started process so it is stopped after the test."""
    started: list[AppProcess] = []

    def track(process: AppProcess) -> AppProcess:
        started.append(process)
        return process

    yield track
    for process in reversed(started):
        process.stop()


def heartbeat_runs() -> list[PeriodicRun]:
    return list(PeriodicRun.objects.filter(task_name=HEARTBEAT_TASK).order_by("scheduled_for"))


@pytest.mark.django_db(transaction=True)
def test_beat_schedules_runs_one_interval_apart_and_a_second_beat_waits_for_the_lock(
    periodic_env: dict[str, str], processes, tmp_path: Path
) -> None:
    processes(start_worker(periodic_env, queues=[app_contract.DEFAULT_QUEUE]))
    first_beat = processes(start_beat(periodic_env))
    wait_for(lambda: len(heartbeat_runs()) >= 2, timeout=30, message=f"no runs; {first_beat.describe()}")

    second_beat = processes(start_beat(periodic_env))
    runs_before = len(heartbeat_runs())
    wait_for(lambda: len(heartbeat_runs()) >= runs_before + 3, timeout=30, message="runs stopped")

    runs = heartbeat_runs()
    assert all(run.firing == 1 for run in runs), "two Beats must never fire the same slot"
    gaps = {
        (later.scheduled_for - earlier.scheduled_for).total_seconds() for earlier, later in pairwise(runs)
    }
    assert all(INTERVAL_SECONDS <= gap < INTERVAL_SECONDS + 1 for gap in gaps), f"slot gaps {gaps}"
    assert "Sending due task" not in second_beat.output(), "the second Beat must wait for the lock"
    heartbeat = tmp_path / "beat-heartbeat"
    assert time.time() - heartbeat.stat().st_mtime < app_contract.HEARTBEAT_MAX_AGE_SECONDS

    # A stopped Beat releases the lock: the standby takes over without waiting for it to expire.
    first_beat.send_signal(signal.SIGTERM)
    first_beat.wait_exit(timeout=10)
    wait_for(
        lambda: "Sending due task" in second_beat.output(),
        timeout=15,
        message=f"the standby Beat did not take over; {second_beat.describe()}",
    )


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.mark.django_db(transaction=True)
def test_beat_rides_out_a_redis_outage_that_loses_every_key(
    test_database_url: str, own_redis: RedisServer, processes, tmp_path: Path
) -> None:
    """The outage outlasts a tick and Redis comes back empty: no lock, no schedule. The same Beat
    process takes the lock again, writes its schedule again and goes on firing."""
    env = container_env(
        test_database_url,
        own_redis.url,
        BEAT_HEARTBEAT_FILE=str(tmp_path / "beat-heartbeat"),
        WORKER_HEARTBEAT_FILE=str(tmp_path / "worker-heartbeat"),
        **{app_contract.PERIODIC_HEARTBEAT_SECONDS: str(INTERVAL_SECONDS)},
    )
    processes(start_worker(env, queues=[app_contract.DEFAULT_QUEUE]))
    beat = processes(start_beat(env))
    wait_for(lambda: len(heartbeat_runs()) >= 2, timeout=30, message=f"no runs; {beat.describe()}")

    own_redis.stop()
    wait_for(lambda: "Redis unavailable" in beat.output(), timeout=20, message=beat.describe())
    own_redis.start()
    runs_before = len(heartbeat_runs())

    wait_for(lambda: len(heartbeat_runs()) >= runs_before + 3, timeout=45, message=beat.describe())
    assert beat.is_running(), beat.describe()
    assert all(run.firing == 1 for run in heartbeat_runs())
    assert "Acquired lock" in beat.output().split("Redis unavailable", 1)[1], "the lock was not taken again"
