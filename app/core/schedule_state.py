"""What each Beat schedule entry has done, kept in Redis: its record and its overlap lock.

Keys (every one is named by `redis_key`, which puts the stack's REDIS_KEY_PREFIX in front):

- `schedules:record:<entry>`, a hash:
    scheduled_since   when Beat first scheduled the entry (epoch seconds; kept, never moved)
    sent_at           when Beat last sent a run
    started_at        when a worker last started a run
    succeeded_at      when a run last succeeded
    failed_at         when a run last failed, and `failure`, the exception's type
    skipped           runs skipped in all (catch_up, deadline), and `skipped_at`, when last
    overlapped        runs not started in all (overlap: skip), and `overlapped_at`, when last
    skipped_unpublished, overlapped_unpublished   what the queue-metrics publisher has not sent yet
- `schedules:lock:<entry>`: the overlap lock of a running run (overlap: skip), whose value is the
  run's owner token and whose time-to-live is the task's hard time limit.

Beat writes scheduled_since, sent_at and the skips it decides; workers the rest. Records of entries
removed from the schedule are deleted when Beat sets up its schedule. Every function takes the
Redis client of its caller, with or without decoded responses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import redis
from redis.lock import Lock

from core.app_redis import redis_key as app_key

KEY_PREFIX = "schedules:"

SCHEDULED_SINCE = "scheduled_since"
SENT_AT = "sent_at"
STARTED_AT = "started_at"
SUCCEEDED_AT = "succeeded_at"
FAILED_AT = "failed_at"
FAILURE = "failure"
SKIPPED, SKIPPED_AT, SKIPPED_UNPUBLISHED = "skipped", "skipped_at", "skipped_unpublished"
OVERLAPPED, OVERLAPPED_AT, OVERLAPPED_UNPUBLISHED = "overlapped", "overlapped_at", "overlapped_unpublished"


def redis_key(kind: Literal["record", "lock"], entry: str) -> str:
    """The name of every Redis key this module writes."""
    return app_key(f"{KEY_PREFIX}{kind}:{entry}")


@dataclass(frozen=True)
class EntryRecord:
    """An entry's record as read from Redis (times in epoch seconds, None: never)."""

    scheduled_since: float | None = None
    sent_at: float | None = None
    started_at: float | None = None
    succeeded_at: float | None = None
    failed_at: float | None = None
    failure: str = ""
    skipped: int = 0
    skipped_at: float | None = None
    overlapped: int = 0
    overlapped_at: float | None = None
    skipped_unpublished: int = 0
    overlapped_unpublished: int = 0

    @classmethod
    def from_hash(cls, fields: Mapping[Any, Any]) -> EntryRecord:
        text = {_text(name): _text(value) for name, value in fields.items()}
        times = (SCHEDULED_SINCE, SENT_AT, STARTED_AT, SUCCEEDED_AT, FAILED_AT, SKIPPED_AT, OVERLAPPED_AT)
        counts = (SKIPPED, OVERLAPPED, SKIPPED_UNPUBLISHED, OVERLAPPED_UNPUBLISHED)
        return cls(
            failure=text.get(FAILURE, ""),
            **{name: float(text[name]) for name in times if name in text},
            **{name: int(text[name]) for name in counts if name in text},
        )

    def seconds_since_success(self, now: float) -> float | None:
        """Since the last success or, before the first, since Beat scheduled the entry."""
        since = self.succeeded_at if self.succeeded_at is not None else self.scheduled_since
        return None if since is None else max(0.0, now - since)


# --- Beat ------------------------------------------------------------------------------------------


def mark_scheduled(client: redis.Redis, entries: Iterable[str], removed: Iterable[str], now: float) -> None:
    """Beat has set up its schedule: the entries' clocks start (once), removed entries' records go."""
    pipe = client.pipeline(transaction=False)
    for entry in entries:
        pipe.hsetnx(redis_key("record", entry), SCHEDULED_SINCE, now)
    for entry in removed:
        pipe.delete(redis_key("record", entry), redis_key("lock", entry))
    pipe.execute()


def record_sent(client: redis.Redis, entry: str, now: float) -> None:
    client.hset(redis_key("record", entry), SENT_AT, now)


def add_skipped(client: redis.Redis, entry: str, runs: int, now: float) -> None:
    _count(client, entry, runs, now, SKIPPED, SKIPPED_AT, SKIPPED_UNPUBLISHED)


# --- workers -------------------------------------------------------------------------------------


def add_overlapped(client: redis.Redis, entry: str, now: float) -> None:
    _count(client, entry, 1, now, OVERLAPPED, OVERLAPPED_AT, OVERLAPPED_UNPUBLISHED)


def record_started(client: redis.Redis, entry: str, now: float) -> None:
    client.hset(redis_key("record", entry), STARTED_AT, now)


def record_outcome(client: redis.Redis, entry: str, now: float, failure: BaseException | None) -> None:
    key = redis_key("record", entry)
    if failure is None:
        client.hset(key, SUCCEEDED_AT, now)
    else:
        client.hset(key, mapping={FAILED_AT: now, FAILURE: type(failure).__name__})


def overlap_lock(client: redis.Redis, entry: str, hard_time_limit_seconds: float) -> Lock:
    """The entry's overlap lock (not yet taken): SET NX with an owner token, released by its owner
    only (a compare-and-delete script), expiring after the hard time limit of the run holding it."""
    return client.lock(
        redis_key("lock", entry), timeout=hard_time_limit_seconds, blocking=False, thread_local=False
    )


# --- readers ---------------------------------------------------------------------------------------


def read_records(client: redis.Redis, entries: Iterable[str]) -> dict[str, EntryRecord]:
    names = list(entries)
    pipe = client.pipeline(transaction=False)
    for entry in names:
        pipe.hgetall(redis_key("record", entry))
    return {entry: EntryRecord.from_hash(fields) for entry, fields in zip(names, pipe.execute(), strict=True)}


def drain_records(client: redis.Redis, entries: Iterable[str]) -> dict[str, EntryRecord]:
    """The records, with the counts not yet published taken out of Redis in the same transaction
    (MULTI/EXEC: a skip counted meanwhile is in the next drain, never lost between the two)."""
    names = list(entries)
    pipe = client.pipeline(transaction=True)
    for entry in names:
        key = redis_key("record", entry)
        pipe.hgetall(key)
        pipe.hdel(key, SKIPPED_UNPUBLISHED, OVERLAPPED_UNPUBLISHED)
    replies = pipe.execute()
    return {entry: EntryRecord.from_hash(fields) for entry, fields in zip(names, replies[::2], strict=True)}


def _count(
    client: redis.Redis, entry: str, runs: int, now: float, total: str, at: str, unpublished: str
) -> None:
    key = redis_key("record", entry)
    pipe = client.pipeline(transaction=True)
    pipe.hincrby(key, total, runs)
    pipe.hincrby(key, unpublished, runs)
    pipe.hset(key, at, now)
    pipe.execute()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
