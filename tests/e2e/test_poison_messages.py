"""Poison messages: a worker survives each, the message ends in the dead-letter list after a bounded
number of deliveries, and the welcome emails around it are each sent once.

The four poisons of production: a task that raises MemoryError (Celery would end the worker's main
process, and the next worker's on redelivery), a task whose pool process is killed every time (the
OOM killer), a message with a 1 MB argument, and a queue entry that is not a message at all. The
first two are tasks of the test suite (tests/e2e/poison_tasks.py), imported by the worker with
`--include`; the others reach the product's own queue as any client could put them there.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from celery import Celery

from infra import app_contract
from testkit.processes import wait_for
from tests.e2e import poison_tasks
from tests.e2e.ledger import Scenario
from tests.e2e.test_delivery_faults import latest_published

# The app's default (TASK_MAX_DELIVERIES): runs of one message before its next delivery is dead-lettered.
MAX_DELIVERIES = 3
NOT_A_MESSAGE = b"\x00\x01 not JSON, not a message"


def test_poison_messages(scenario: Scenario) -> None:
    """Each poison ends in the dead letters and the worker survives all four."""
    stack = scenario.stack
    started = datetime.now(UTC)
    worker = scenario.start_worker(include=poison_tasks.__name__)
    client = Celery("client", broker=stack.redis.url(), set_as_current=False)  # any producer
    scenario.sign_up(5)
    sent = {
        "memory": client.send_task(poison_tasks.RAISE_MEMORY_ERROR, queue=app_contract.EMAIL_QUEUE).id,
        "killed": client.send_task(poison_tasks.KILL_OWN_PROCESS, queue=app_contract.EMAIL_QUEUE).id,
        "large": client.send_task(
            "signups.tasks.send_welcome_email", args=["x" * 1_000_000], queue=app_contract.EMAIL_QUEUE
        ).id,
    }
    stack.redis.client().lpush(app_contract.EMAIL_QUEUE, NOT_A_MESSAGE)
    scenario.sign_up(5)

    letters = wait_for(
        lambda: len(found := dead_letters(stack)) == 4 and found,
        60,
        f"the four poisons did not all reach the dead letters; {worker.describe()}",
    )
    assert worker.is_running(), f"a poison ended the worker; {worker.describe()}"
    by_id = {letter["id"]: letter for letter in letters}
    memory, killed = by_id[sent["memory"]], by_id[sent["killed"]]
    assert memory["deliveries"] == MAX_DELIVERIES and "MemoryError" in memory["reason"], memory
    assert killed["deliveries"] == MAX_DELIVERIES and "did not finish" in killed["reason"], killed
    [large] = [letter for letter in letters if "larger than" in letter["reason"]]
    assert sent["large"] in large["raw"], "the too-large message is kept as it was"
    [raw] = [letter for letter in letters if letter["raw"] and "not a message" in letter["reason"]]
    assert raw["raw"] == NOT_A_MESSAGE.decode()
    scenario.settle_emails(timeout=60)
    wait_for(lambda: latest_published(stack, "DeadLetters", started) == 4, 30,
             "the publisher did not report the 4 dead letters")

    listing = stack.run_command("dead_letters", "list")
    assert "4 dead letter(s)" in listing.output() and "xxxx" not in listing.output(), listing.describe()
    stack.run_command("dead_letters", "drop", "--all")
    assert dead_letters(stack) == []


def dead_letters(stack) -> list[dict]:
    return [json.loads(entry) for entry in stack.redis.client().lrange("dead-letters", 0, -1)]
