"""Each worker pool process measures the tasks it runs and leaves summaries in Redis for the publisher.

Per task: the run time (task_prerun to task_postrun, in the pool process) and the queue wait (from
the `sent_at` header stamped at publish to the start; tasks with a countdown or ETA are left out,
their wait is on purpose). The samples are summed per pool in memory and pushed to the pool's Redis
list (schema.task_stats_key) at most every FLUSH_SECONDS: one RPUSH per pool process and interval,
never one per task, so short tasks pay nothing measurable. The publisher drains the list every
interval and sends statistic sets to CloudWatch, where the calibration alarm compares them with
the pool's configured taskSeconds.

Measuring never gets in the way of a task: a Redis error is logged (once per cool-down) and the
samples are kept for the next flush; the list is trimmed so a stopped publisher cannot fill Redis.
At most FLUSH_SECONDS of samples of a pool process wait for its next task (or its exit).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from queuemetrics import schema

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 5.0
# After a failed flush, skip flushing this long (a Redis outage must not slow every task down).
COOL_DOWN_SECONDS = 30.0
# Records a pool's list keeps when nobody drains it (about 14 h of one process flushing every 5 s).
MAX_RECORDS = 10_000
# A list nobody drains (no publisher, e.g. a local run) disappears after a day.
RECORDS_EXPIRE_SECONDS = 24 * 3600
_REDIS_TIMEOUT_SECONDS = 0.5


class TaskStatsRecorder:
    """The samples of one pool process, and how they reach Redis."""

    def __init__(
        self,
        client_factory: Callable[[], redis.Redis],
        key_prefix: str = "",
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._client_factory = client_factory
        self._client: redis.Redis | None = None
        self.key_prefix = key_prefix
        self.clock = clock
        self.wall_clock = wall_clock
        self.pending: dict[str, schema.TaskStats] = {}
        self._started: dict[str, float] = {}
        self._next_flush = -float("inf")
        self._lock = threading.Lock()  # thread pools run several tasks in one process

    def task_started(self, task_id: str, request: Any) -> None:
        now = self.clock()
        with self._lock:
            self._started[task_id] = now
        sent_at = getattr(request, schema.SENT_AT_HEADER, None)
        if sent_at is None or getattr(request, "eta", None) is not None:
            return
        try:
            wait = max(0.0, self.wall_clock() - float(sent_at))
        except (TypeError, ValueError):
            return
        with self._lock:
            self._stats(pool_of(request)).wait.add(wait)

    def task_finished(self, task_id: str, request: Any) -> None:
        now = self.clock()
        with self._lock:
            started = self._started.pop(task_id, None)
            if started is not None:
                self._stats(pool_of(request)).run.add(now - started)
            due = now >= self._next_flush
        if due:
            self.flush()

    def flush(self) -> None:
        """Push every pending summary to its pool's list; on failure keep them for the next time."""
        with self._lock:
            pending, self.pending = self.pending, {}
            self._next_flush = self.clock() + FLUSH_SECONDS
        if not pending:
            return
        try:
            self._push(pending)
        except redis.RedisError as error:
            logger.warning("cannot record task statistics, keeping them for later: %s", error)
            with self._lock:
                for pool, stats in pending.items():
                    self._stats(pool).merge(stats)
                self._next_flush = self.clock() + COOL_DOWN_SECONDS

    def _push(self, pending: dict[str, schema.TaskStats]) -> None:
        if self._client is None:
            self._client = self._client_factory()
        pipe = self._client.pipeline(transaction=False)
        for pool, stats in pending.items():
            key = schema.task_stats_key(pool, self.key_prefix)
            pipe.rpush(key, stats.encode())
            pipe.ltrim(key, -MAX_RECORDS, -1)
            pipe.expire(key, RECORDS_EXPIRE_SECONDS)
        pipe.execute()

    def _stats(self, pool: str) -> schema.TaskStats:
        return self.pending.setdefault(pool, schema.TaskStats())


def pool_of(request: Any) -> str:
    """The pool of the worker running a task: its node name is `<pool>@<host>` (the worker command)."""
    hostname = getattr(request, "hostname", None) or ""
    return hostname.partition("@")[0] or "unknown"


def redis_client(url: str) -> redis.Redis:
    """A client of its own with short timeouts: a half-open Redis costs a task at most a second."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=_REDIS_TIMEOUT_SECONDS,
        socket_timeout=_REDIS_TIMEOUT_SECONDS,
        retry_on_timeout=False,
    )


_recorder: TaskStatsRecorder | None = None
_recorder_pid: int | None = None


def recorder() -> TaskStatsRecorder:
    """This process's recorder (pool processes are forked: each makes its own, with its own client)."""
    global _recorder, _recorder_pid
    if _recorder is None or _recorder_pid != os.getpid():
        from django.conf import settings

        options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {}
        url = settings.REDIS_URL
        _recorder = TaskStatsRecorder(lambda: redis_client(url), options.get("global_keyprefix", ""))
        _recorder_pid = os.getpid()
    return _recorder


def _measured(task: Any) -> bool:
    # Eager tasks (`.apply()`) run inside their caller: not a worker's task.
    return task is not None and not getattr(task.request, "is_eager", False)


def on_task_prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id and _measured(task):
        recorder().task_started(task_id, task.request)


def on_task_postrun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id and _measured(task):
        recorder().task_finished(task_id, task.request)


def on_process_shutdown(**_: Any) -> None:
    """A pool process that exits (max tasks per child, shutdown) leaves its last samples."""
    if _recorder is not None and _recorder_pid == os.getpid():
        _recorder.flush()
