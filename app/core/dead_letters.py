"""Poison messages: every task message gets a bounded number of deliveries, then waits in the
dead-letter list for people (`manage.py dead_letters list|replay|drop`).

- Each run of a task from a message counts one delivery of that message (a Redis counter per task
  id and retry number, deleted when the run ends, else kept for COUNTER_TTL_SECONDS). A message is
  redelivered when its run did not end: its pool process was killed (out of memory, SIGKILL), the
  whole worker was lost (the visibility timeout brings it back), or the task ran out of memory
  (MemoryError, put back here instead of ending the worker's main process, which Celery does). The
  delivery after TASK_MAX_DELIVERIES runs does not run the task: the message goes to the
  dead-letter list and is acknowledged.
- An entry of a queue that is not a message at all (not JSON, not a kombu envelope) cannot be run
  or acknowledged: the worker's transport (core.transport) puts it in the dead-letter list as it is.

The depth of the list is published with the queue metrics (queuemetrics.schema.DEAD_LETTERS), and
an alarm tells people when it is above 0. A Redis that refuses writes (READONLY, OOM) cannot
count: the run goes ahead uncounted rather than not at all.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from typing import Any, NoReturn

import redis
from celery import Task
from celery.exceptions import Ignore, Reject
from django.conf import settings

from core.app_redis import redis_client, redis_key

logger = logging.getLogger(__name__)

DEAD_LETTERS_KEY = "dead-letters"
# The count of a message whose runs never end outlives its redeliveries (a visibility timeout, an
# hour, apart each at worst); a run that ends deletes it.
COUNTER_TTL_SECONDS = 24 * 3600
# Why a message came back, when the run that ended knew it (MemoryError); else it was killed.
_FAILURE_FIELD = "failure"
_COUNT_FIELD = "deliveries"
UNFINISHED = "its runs did not finish (the process was killed, or the worker lost)"


@dataclass(frozen=True)
class DeadLetter:
    """One message in the dead-letter list: a task message (replayable), or a raw queue entry."""

    id: str
    queue: str
    reason: str
    at: float
    deliveries: int = 0
    task: str | None = None
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    retries: int = 0
    raw: str | None = None  # an entry that was not a message, as it was on the queue

    def encode(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def decode(cls, text: str | bytes) -> DeadLetter:
        return cls(**json.loads(text))

    @property
    def replayable(self) -> bool:
        return self.task is not None


def dead_letters_key() -> str:
    return redis_key(DEAD_LETTERS_KEY)


def delivery_key(task_id: str, retries: int) -> str:
    """Celery's retries keep the task id: each retry is a message of its own."""
    return redis_key(f"deliveries:{task_id}:{retries}")


def count_delivery(client: redis.Redis, task_id: str, retries: int) -> tuple[int, str]:
    """Count one more delivery of a message; the deliveries so far and why the last one failed."""
    key = delivery_key(task_id, retries)
    with client.pipeline() as pipe:
        pipe.hincrby(key, _COUNT_FIELD, 1)
        pipe.hget(key, _FAILURE_FIELD)
        pipe.expire(key, COUNTER_TTL_SECONDS)
        deliveries, failure, _ = pipe.execute()
    return int(deliveries), _text(failure) if failure else UNFINISHED


def record_failure(client: redis.Redis, task_id: str, retries: int, failure: str) -> None:
    client.hset(delivery_key(task_id, retries), _FAILURE_FIELD, failure)


def add(client: redis.Redis, letter: DeadLetter) -> None:
    client.lpush(dead_letters_key(), letter.encode())


def raw_entry(queue: str, raw: str, reason: str) -> DeadLetter:
    return DeadLetter(id=str(uuid.uuid4()), queue=queue, reason=reason, at=time.time(), raw=raw)


def depth(client: redis.Redis) -> int:
    return int(client.llen(dead_letters_key()))


def read_all(client: redis.Redis) -> list[tuple[bytes, DeadLetter]]:
    """Every dead letter, oldest first, with its stored form (what `remove` needs)."""
    stored = client.lrange(dead_letters_key(), 0, -1)
    return [(raw, DeadLetter.decode(raw)) for raw in reversed(stored)]


def remove(client: redis.Redis, stored: bytes) -> None:
    client.lrem(dead_letters_key(), 1, stored)


def replay(client: redis.Redis, app: Any, letter: DeadLetter) -> None:
    """Publish a task message again with the same id, its delivery count started afresh."""
    if not letter.replayable:
        raise ValueError(f"dead letter {letter.id} is not a task message; drop it")
    client.delete(delivery_key(letter.id, letter.retries))
    app.send_task(
        letter.task, args=letter.args, kwargs=letter.kwargs, task_id=letter.id, queue=letter.queue,
        retries=letter.retries,
    )  # fmt: skip


def select(letters: Iterable[tuple[bytes, DeadLetter]], ids: Iterable[str]) -> list[tuple[bytes, DeadLetter]]:
    wanted = set(ids)
    return [(stored, letter) for stored, letter in letters if letter.id in wanted]


def run_counted(task: Task, run: Callable[[], Any]) -> Any:
    """Run a task from a message unless its message was delivered too often (then dead-letter it)."""
    request = task.request
    client = redis_client()
    try:
        deliveries, failure = count_delivery(client, request.id, request.retries or 0)
    except redis.RedisError as error:
        logger.warning("task %s[%s]: delivery not counted (%s)", task.name, request.id, error)
        deliveries, failure = 0, UNFINISHED
    if deliveries > settings.TASK_MAX_DELIVERIES:
        dead_letter(task, client, deliveries - 1, failure)
    try:
        result = run()
    except Reject as reject:
        if not reject.requeue:
            forget(client, task)
        raise
    except MemoryError as error:
        # Celery would re-raise it in the worker's main process and end the worker; put the message
        # back instead, so that it counts as a delivery and ends in the dead letters.
        logger.error("task %s[%s] ran out of memory; its message goes back", task.name, request.id)
        # Unrecorded, the dead letter says the runs did not finish, which is true too.
        with suppress(redis.RedisError):
            record_failure(client, request.id, request.retries or 0, f"MemoryError: {error}"[:500])
        raise Reject("MemoryError", requeue=True) from None
    except BaseException:
        forget(client, task)  # the run ended: its message is acknowledged, retried or rejected
        raise
    forget(client, task)
    return result


def forget(client: redis.Redis, task: Task) -> None:
    """A run that ended needs no count: only messages whose runs never end keep theirs."""
    with suppress(redis.RedisError):
        client.delete(delivery_key(task.request.id, task.request.retries or 0))


def dead_letter(task: Task, client: redis.Redis, deliveries: int, failure: str) -> NoReturn:
    """Store the message in the dead letters, then end the run with Ignore: Celery acknowledges the
    message, and no outcome (success, failure) is reported for a run that did not happen."""
    request = task.request
    letter = DeadLetter(
        id=request.id,
        queue=(request.delivery_info or {}).get("routing_key") or settings.CELERY_TASK_DEFAULT_QUEUE,
        reason=f"delivered {deliveries} times: {failure}",
        at=time.time(),
        deliveries=deliveries,
        task=task.name,
        args=list(request.args or ()),
        kwargs=dict(request.kwargs or {}),
        retries=request.retries or 0,
    )
    try:
        add(client, letter)
    except redis.RedisError as error:
        # Not stored: the message must not be acknowledged, so it comes back for another try.
        raise Reject(f"cannot store the dead letter ({error})", requeue=True) from None
    logger.error(
        "task %s[%s] moved to the dead letters after %s deliveries: %s",
        task.name, request.id, deliveries, failure,
        extra={"outcome": "dead-lettered", "task_id": request.id, "deliveries": deliveries},
    )  # fmt: skip
    raise Ignore()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
