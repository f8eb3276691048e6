"""Exactly one scheduler: two Beat processes at once must not fire any periodic slot twice.

Two Beats happen on AWS during a deploy that overlaps old and new tasks, a manual run-task, or a
stop that overruns its timeout. Every run of the heartbeat task is recorded in PostgreSQL with the
slot it was sent for (signups.PeriodicRun), so a double firing is visible in the data.
"""

from __future__ import annotations

import itertools
import threading
import time
from datetime import datetime

import pytest

from infra import app_contract
from testkit.processes import wait_for
from tests.e2e.ledger import Scenario, ScenarioResult
from tests.e2e.services import wait_until
from tests.e2e.stack import SHORT_TIMINGS, AppStack
from tests.e2e.test_service_faults import SETTLE_SECONDS

HEARTBEAT_TASK = "signups.tasks.record_heartbeat"
INTERVAL = int(SHORT_TIMINGS[app_contract.PERIODIC_HEARTBEAT_SECONDS])
# Beat wakes up at least this often (CELERY_BEAT_MAX_LOOP_INTERVAL): how late a slot may fire.
BEAT_MAX_LOOP_INTERVAL = 5
# A Beat taking over from one that released its lock fires the pending slot within one loop.
HANDOVER_ALLOWANCE = BEAT_MAX_LOOP_INTERVAL + 2
# Sending, not the schedule, decides a slot's time: each one may be this much late.
TIMING_TOLERANCE = 1.5
STOP_TIMEOUT = 30  # the Beat container's ECS stop timeout
# A killed Beat holds the lock until it expires (CELERY_REDBEAT_LOCK_TIMEOUT); its replacement
# starts after ECS's restart delay and takes over within one loop after that.
LOCK_TIMEOUT = 20
RESTART_ALLOWANCE = LOCK_TIMEOUT + BEAT_MAX_LOOP_INTERVAL + 10
# Longer than the lock timeout: the holder extends its lock while the other Beat waits for it.
OVERLAP_SECONDS = LOCK_TIMEOUT + 10
# RedBeat retries a failing Redis call this long itself (CELERY_REDBEAT_REDIS_OPTIONS retry_period).
REDBEAT_RETRY_SECONDS = 30
# Longer than the lock timeout and RedBeat's retries (plus a loop), so Beat itself meets the outage.
REDIS_OUTAGE_SECONDS = REDBEAT_RETRY_SECONDS + BEAT_MAX_LOOP_INTERVAL + 10


def recorded_runs(stack: AppStack) -> list[tuple[datetime, int]]:
    with stack.postgres.connect() as connection:
        return connection.execute(
            "SELECT scheduled_for, firing FROM signups_periodicrun WHERE task_name = %s "
            "ORDER BY scheduled_for, firing",
            (HEARTBEAT_TASK,),
        ).fetchall()


def distinct_slots(stack: AppStack) -> list[datetime]:
    return sorted({slot for slot, _firing in recorded_runs(stack)})


@pytest.mark.slow
def test_two_beats_fire_each_slot_once(scenario: Scenario) -> None:
    stack = scenario.stack
    scenario.start_worker()  # runs the heartbeat tasks
    first = scenario.start_beat()
    first.wait_for_log("Acquired lock")
    second = scenario.start_beat()
    overlap_started = time.monotonic()

    wait_until(
        lambda: time.monotonic() - overlap_started >= OVERLAP_SECONDS
        and len(distinct_slots(stack)) >= OVERLAP_SECONDS // INTERVAL - 2,
        OVERLAP_SECONDS + 30, f"the heartbeat did not run every {INTERVAL} s", scenario.processes, interval=1,
    )
    assert first.is_running() and second.is_running(), scenario.describe_processes()
    assert "Sending due task" not in second.output(), (
        f"the second Beat sent tasks while the first held the lock; {second.describe()}"
    )

    # A deploy stops the Beat holding the lock; the other takes over and keeps the schedule.
    slots_before_handover = len(distinct_slots(stack))
    stopped = first.stop_like_ecs(STOP_TIMEOUT)
    assert not stopped.killed, f"Beat did not exit on SIGTERM; {first.describe()}"
    wait_until(
        lambda: len(distinct_slots(stack)) >= slots_before_handover + 3,
        HANDOVER_ALLOWANCE + 3 * INTERVAL + 10, "the remaining Beat did not take over", [second],
    )
    second.stop_like_ecs(STOP_TIMEOUT)
    wait_for(lambda: not any(stack.broker_backlog().values()), 30, "heartbeat tasks still in the broker")

    runs = recorded_runs(stack)
    slots = distinct_slots(stack)
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(slots)]
    early = [gap for gap in gaps if gap < INTERVAL - TIMING_TOLERANCE]
    late = [gap for gap in gaps if gap > INTERVAL + HANDOVER_ALLOWANCE]
    result = scenario.record(ScenarioResult(
        scenario=scenario.name, sent=len(slots) + len(late), completed=len(slots), lost=len(late),
        duplicated=sum(1 for _slot, firing in runs if firing > 1) + len(early),
        seconds=time.monotonic() - scenario.started,
    ))
    assert result.duplicated == 0, (
        f"slots fired twice: {[str(slot) for slot, firing in runs if firing > 1]}; slots closer than the "
        f"interval ({INTERVAL} s): {early}"
    )
    assert result.lost == 0, f"slots skipped: gaps of {late} s between runs (interval {INTERVAL} s)"
    assert sum(gap > INTERVAL + TIMING_TOLERANCE for gap in gaps) <= 1, (
        f"runs were late more than once (only the handover may be): gaps {gaps}"
    )


def slot_result(scenario: Scenario, allowed_gap: float, excused_gaps: int = 0) -> ScenarioResult:
    """Slots of the heartbeat task as a ledger: a gap beyond `allowed_gap` lost slots (except
    `excused_gaps` of them: an outage during which nothing can be sent), an early one is a double."""
    runs = recorded_runs(scenario.stack)
    slots = distinct_slots(scenario.stack)
    gaps = sorted((later - earlier).total_seconds() for earlier, later in itertools.pairwise(slots))
    early = [gap for gap in gaps if gap < INTERVAL - TIMING_TOLERANCE]
    late = [gap for gap in gaps if gap > allowed_gap]
    late = late[: max(0, len(late) - excused_gaps)]  # the longest gaps are the excused ones
    return ScenarioResult(
        scenario=scenario.name, sent=len(slots) + len(late), completed=len(slots), lost=len(late),
        duplicated=sum(1 for _slot, firing in runs if firing > 1) + len(early),
        seconds=time.monotonic() - scenario.started,
    )


@pytest.mark.slow
def test_beat_rides_out_a_redis_outage(scenario: Scenario) -> None:
    """Redis is gone for 45 s (longer than the lock timeout and RedBeat's own retries). The same
    Beat process keeps running, fires again once Redis is back, and its sweep publishes the signups
    the web kept (503) during the outage: each email arrives once."""
    stack = scenario.stack
    scenario.start_worker()
    beat = scenario.start_beat()
    beat.wait_for_log("Acquired lock")
    wait_until(lambda: len(distinct_slots(stack)) >= 2, 30, "no heartbeat before the outage", [beat])

    outage = threading.Thread(target=stack.redis.restart_keeping_data, args=(REDIS_OUTAGE_SECONDS,))
    outage.start()
    wait_for(lambda: stack.get(app_contract.READINESS_PATH) == 503, 20, "/readyz did not see Redis go")
    scenario.sign_up(5, accepted=(503,))  # kept in PostgreSQL for the sweep
    outage.join(REDIS_OUTAGE_SECONDS + 30)
    slots_after_outage = len(distinct_slots(stack))

    scenario.settle_emails(timeout=SETTLE_SECONDS)
    wait_until(lambda: len(distinct_slots(stack)) >= slots_after_outage + 3, 30, "Beat did not fire again",
               [beat])
    assert beat.is_running(), f"Beat exited during the Redis outage; {beat.describe()}"
    assert "Redis unavailable" in beat.output(), beat.describe()
    slots = slot_result(scenario, INTERVAL + HANDOVER_ALLOWANCE, excused_gaps=1)
    assert slots.duplicated == 0 and slots.lost == 0, slots.problems()


def test_an_exited_beat_is_restarted_by_its_service(scenario: Scenario) -> None:
    """Beat's container is killed (out of memory, a host lost). Its ECS service starts another; the
    new Beat waits for the dead one's lock to expire, then keeps the schedule: no slot fires twice,
    and the only gap is the restart."""
    stack = scenario.stack
    scenario.start_worker()
    service = scenario.run_beat_service()
    service.task.wait_for_log("Acquired lock")
    wait_until(lambda: len(distinct_slots(stack)) >= 3, 30, "no heartbeat from the first Beat",
               [service.task])

    killed = service.task
    killed.kill()
    wait_until(lambda: service.replacements == 1 and service.task.is_running(), 30,
               "the service did not start another Beat", [killed])
    slots_before = len(distinct_slots(stack))
    service.task.wait_for_log("Acquired lock", timeout=LOCK_TIMEOUT + 30)
    wait_until(lambda: len(distinct_slots(stack)) >= slots_before + 3, 30, "the new Beat did not fire",
               [service.task])
    service.stop()
    service.task.stop_like_ecs(STOP_TIMEOUT)

    result = scenario.record(slot_result(scenario, RESTART_ALLOWANCE))
    assert service.task is not killed and service.replacements == 1
    assert result.duplicated == 0, result.problems()
    assert result.lost == 0, f"a gap longer than the restart allowance ({RESTART_ALLOWANCE} s)"
