"""Redis answers but refuses writes: a replica after a failover (READONLY), or a node full under
noeviction (OOM). Beat rides it out with the one-Beat guarantee, a worker keeps a bounded number of
connections, and a message a worker popped and could not record in `unacked` (Redis refused the
write, or the worker died between the two) is mailed once, by the sweep, within its grace.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

from infra import app_contract
from tests.e2e.ledger import Scenario
from tests.e2e.services import wait_until
from tests.e2e.stack import SHORT_TIMINGS
from tests.e2e.test_beat_faults import INTERVAL, distinct_slots, slot_result

# Each refusal; the lock of the Beat that holds it cannot be extended meanwhile.
REFUSAL_SECONDS = 6
# Connections the processes may hold, while Redis refuses writes and after, on top of what they had
# before (a reconnect that leaked saw 10 grow to 185 in 15 s).
CONNECTION_ALLOWANCE = 12
# A lost message is published again by the sweep a hard time limit plus the requeue delay after it
# was enqueued (signups.tasks.lost_message_cutoff).
LOST_MESSAGE_GRACE = int(SHORT_TIMINGS[app_contract.CELERY_TASK_TIME_LIMIT]) + int(
    SHORT_TIMINGS[app_contract.SIGNUP_REQUEUE_AFTER_SECONDS]
)


class ConnectionSampler:
    """The largest number of clients Redis saw connected while the sampler ran."""

    def __init__(self, count: Callable[[], int]) -> None:
        self.count = count
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.25):
            self.peak = max(self.peak, self.count())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(5)
        return self.peak


def test_redis_refusing_writes(scenario: Scenario) -> None:
    """READONLY, then OOM. Two Beats: neither exits, no slot fires twice, both keep the schedule
    afterwards. The worker survives and its connections stay bounded, during the refusals and after.

    One message is lost as a worker loses one it popped and could not record in `unacked` (Redis
    refused the write, or the worker died between the two): it is in no list. The sweep finds its
    signup after the grace, while Redis refuses writes and after, and each email arrives once."""
    stack = scenario.stack
    first = scenario.start_beat()
    first.wait_for_log("Acquired lock")
    second = scenario.start_beat()
    scenario.sign_up(3)
    assert stack.redis.client().rpop(app_contract.EMAIL_QUEUE), "popped, and recorded nowhere"
    lost_at = time.monotonic()
    worker = scenario.start_worker()
    wait_until(lambda: len(distinct_slots(stack)) >= 2, 30, "no heartbeat before the refusals", [first])
    before = stack.redis.connected_clients()
    sampler = ConnectionSampler(stack.redis.connected_clients)
    for refusal in ("READONLY", "OOM"):
        stack.redis.refuse_writes(refusal)
        time.sleep(REFUSAL_SECONDS)  # the fault itself: the point of the scenario
        stack.redis.accept_writes()
    peak = sampler.stop()

    scenario.settle_emails(timeout=LOST_MESSAGE_GRACE + 30)
    # The sweep needs Beat and a worker, which wait out the refusals (12 s) too.
    assert time.monotonic() - lost_at < LOST_MESSAGE_GRACE + 2 * REFUSAL_SECONDS + 15, "lost past the grace"
    assert re.search(r"requeued \d+ signups", worker.output()), "the sweep did not publish the lost message"
    slots_after = len(distinct_slots(stack))
    wait_until(
        lambda: len(distinct_slots(stack)) >= slots_after + 2, 30, "no Beat fired again", scenario.processes
    )
    assert first.is_running() and second.is_running() and worker.is_running(), scenario.describe_processes()
    assert peak <= before + CONNECTION_ALLOWANCE, (
        f"Redis saw {peak} clients while refusing writes, {before} before"
    )
    # Reconnecting must not leak: the processes settle within the same allowance. Not exactly at their
    # number: the second Beat may hold the lock now, and a worker child that ran the sweep since keeps
    # the connections its pools opened for it.
    wait_until(
        lambda: stack.redis.connected_clients() <= before + CONNECTION_ALLOWANCE,
        30,
        f"connections did not settle within {CONNECTION_ALLOWANCE} of the {before} before the refusals",
        [*scenario.processes, stack.redis],
    )
    beat = slot_result(scenario, INTERVAL + 2 * REFUSAL_SECONDS + 5, excused_gaps=1)
    assert beat.duplicated == 0, f"two Beats fired: {beat.problems()}"
