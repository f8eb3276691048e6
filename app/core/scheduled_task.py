"""The task class of the app (config/celery.py): each message is run a bounded number of times
(core.dead_letters), and a run Beat sent for a schedule entry keeps the
entry's overlap policy and leaves its outcome in the entry's record (core.schedule_state).

Beat stamps each message with the entry's name (SCHEDULE_ENTRY_HEADER, core.beat). For such a run:

- `overlap: skip`: the run takes the entry's lock (an owner token, a time-to-live of the task's
  hard time limit) before it starts, and releases it when it ends. When another run holds it, this
  one does not start: it is counted as overlapped and ends as a success without result. A run that
  cannot take the lock because Redis does not answer does not start either; it fails, so the
  promise "never two at once" holds through an outage.
- every run records when it started, and when it succeeded or failed (a retry, `Ignore` or `Reject`
  is neither). A record that cannot be written is logged; it never changes the run's outcome.

A message whose deadline passed in the queue (its `expires`, set by Beat from the policy) is
dropped by Celery without running; `count_expired_run` counts it as skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis
from celery import Task
from celery.exceptions import Ignore, Reject, Retry
from celery.signals import task_revoked
from redis.exceptions import LockNotOwnedError
from redis.lock import Lock

from core import dead_letters, schedule_state
from core.app_redis import redis_client
from core.beat import SCHEDULE_ENTRY_HEADER, SCHEDULED_FOR_HEADER
from core.schedules import EntryPolicy

logger = logging.getLogger(__name__)

# Exceptions that end a run without an outcome: it is retried, or dropped on purpose.
NO_OUTCOME = (Retry, Ignore, Reject)


class ScheduleLockUnavailableError(RuntimeError):
    """The overlap lock could not be asked for: the run does not start."""


class ScheduledTask(Task):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.request.id is None:  # called as a plain function, not run from a message
            return super().__call__(*args, **kwargs)
        # Run from a message: the worker has pushed this run's request already, and Celery's own
        # __call__ would hide it behind a bare one.
        if self.request.is_eager:
            return self.run_from_message(args, kwargs)
        return dead_letters.run_counted(self, lambda: self.run_from_message(args, kwargs))

    def run_from_message(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        entry = header(self.request, SCHEDULE_ENTRY_HEADER)
        if not entry:
            return self.run(*args, **kwargs)
        return ScheduledRun(self, entry).run(args, kwargs)


class ScheduledRun:
    """One run of a schedule entry, in a worker."""

    def __init__(self, task: Task, entry: str) -> None:
        self.task = task
        self.entry = entry
        self.slot = header(task.request, SCHEDULED_FOR_HEADER)
        schedule = task.app.conf.beat_schedule or {}
        self.policy = EntryPolicy.of((schedule.get(entry) or {}).get("options"))
        self.client = redis_client()

    def run(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.policy.overlap == "allow":
            return self.run_recorded(args, kwargs)
        lock = self.take_lock()
        if lock is None:
            return None
        try:
            return self.run_recorded(args, kwargs)
        finally:
            release(lock, self.entry)

    def run_recorded(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        started = time.time()
        self.write(schedule_state.record_started, started)
        try:
            result = self.task.run(*args, **kwargs)
        except NO_OUTCOME:
            self.log(started, "retried")
            raise
        except Exception as failure:
            self.write(schedule_state.record_outcome, time.time(), failure)
            self.log(started, "failed", failure)
            raise
        self.write(schedule_state.record_outcome, time.time(), None)
        self.log(started, "succeeded")
        return result

    def take_lock(self) -> Lock | None:
        """The lock this run now holds; None when another run of the entry holds it."""
        lock = schedule_state.overlap_lock(self.client, self.entry, hard_time_limit(self.task))
        try:
            taken = lock.acquire()
        except redis.RedisError as error:
            self.log(time.time(), "failed", error)
            raise ScheduleLockUnavailableError(
                f"schedule entry {self.entry}: cannot ask Redis for the overlap lock ({error}); "
                "the run does not start"
            ) from error
        if taken:
            return lock
        self.write(schedule_state.add_overlapped, time.time())
        logger.warning(
            "schedule entry %s: the run for %s does not start, the previous run still runs",
            self.entry,
            self.slot,
            extra=self.fields(outcome="overlapped", at=time.time()),
        )
        return None

    def write(self, record: Callable[..., None], *values: Any) -> None:
        try:
            record(self.client, self.entry, *values)
        except redis.RedisError as error:
            logger.warning("schedule entry %s: cannot update its record (%s)", self.entry, error)

    def log(self, started: float, outcome: str, failure: BaseException | None = None) -> None:
        """One line per run; `outcome` is succeeded, failed or retried (or dropped on purpose)."""
        finished = time.time()
        logger.info(
            "schedule entry %s: the run for %s %s after %.3f s%s",
            self.entry,
            self.slot,
            outcome,
            finished - started,
            f" ({type(failure).__name__})" if failure else "",
            extra=self.fields(outcome=outcome, started_at=started, finished_at=finished),
        )

    def fields(self, **more: Any) -> dict[str, Any]:
        """Structured log fields: which entry, and the occurrence of its schedule."""
        return {"schedule_entry": self.entry, "scheduled_for": self.slot, **more}


def header(request: Any, name: str) -> str:
    """A header Beat stamped: a worker's request has it as an attribute, an eager one in `headers`."""
    return request.get(name) or (request.get("headers") or {}).get(name) or ""


def release(lock: Lock, entry: str) -> None:
    try:
        lock.release()
    except LockNotOwnedError:
        logger.warning("schedule entry %s: the overlap lock expired before the run ended", entry)
    except redis.RedisError as error:  # it expires by itself after the hard time limit
        logger.warning("schedule entry %s: cannot release the overlap lock (%s)", entry, error)


def hard_time_limit(task: Task) -> float:
    """The hard time limit of this run: from its message, its task, or the app's setting."""
    from_message = (task.request.timelimit or (None, None))[0]
    limit = from_message or task.time_limit or task.app.conf.task_time_limit
    if not limit:
        raise ScheduleLockUnavailableError(
            f"task {task.name} has no hard time limit: the overlap lock would never expire"
        )
    return float(limit)


@task_revoked.connect
def count_expired_run(request: Any = None, expired: bool = False, **_: Any) -> None:
    """A run that waited in the queue past its entry's deadline is a skipped run."""
    entry = header(request, SCHEDULE_ENTRY_HEADER) if expired and request is not None else None
    if not entry:
        return
    slot = header(request, SCHEDULED_FOR_HEADER)
    try:
        schedule_state.add_skipped(redis_client(), entry, 1, time.time())
    except redis.RedisError as error:
        logger.warning("schedule entry %s: cannot count a skipped run (%s)", entry, error)
    logger.warning(
        "schedule entry %s: the run for %s was not started within its deadline; skipped",
        entry,
        slot,
        extra={"schedule_entry": entry, "scheduled_for": slot, "outcome": "expired", "at": time.time()},
    )
