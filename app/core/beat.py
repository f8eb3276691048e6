"""The Beat scheduler: celery-redbeat, plus a heartbeat file, the slot of every periodic run, each
entry's catch-up policy (core.schedules), and riding out Redis outages."""

import logging
import time
from datetime import datetime, timedelta

import redis
from celery.beat import ScheduleEntry
from django.conf import settings
from redbeat import RedBeatScheduler
from redbeat.schedulers import LUA_EXTEND_TO_SCRIPT, get_redis
from redis.exceptions import LockNotOwnedError, OutOfMemoryError, ReadOnlyError

from core import schedule_state, schedules
from core.heartbeat import touch

logger = logging.getLogger(__name__)

# Redis is unreachable, or answered too late (an outage, a failover in progress), or answers and
# refuses writes: a replica after a failover (READONLY), or full under noeviction (OOM).
REDIS_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError, ReadOnlyError, OutOfMemoryError)

# Message header naming the occurrence of the schedule that a periodic message was sent for.
SCHEDULED_FOR_HEADER = "scheduled_for"
# Message header naming the schedule entry a periodic message was sent for (core.scheduled_task).
SCHEDULE_ENTRY_HEADER = "schedule_entry"


def message_options(entry: ScheduleEntry, now: datetime) -> dict:
    """The options of the message sent for `entry` now: the entry's own without its policy (not a
    message option), two headers, and an expiry at the policy's deadline.

    SCHEDULED_FOR_HEADER is the occurrence the run stands for: the first one since the entry last
    ran (for an interval schedule, the previous run plus the interval), a value every Beat reads
    from the same Redis entry. Two Beats firing the same occurrence stamp the same time, so a
    double firing shows up as two runs of one slot (see signups.models.PeriodicRun).
    """
    missed = schedules.missed_runs(entry.schedule, entry.last_run_at, now)
    options = {key: value for key, value in entry.options.items() if key != schedules.POLICY_OPTION}
    options["headers"] = {
        **options.get("headers", {}),
        SCHEDULED_FOR_HEADER: (missed.first if missed else now).isoformat(),
        SCHEDULE_ENTRY_HEADER: entry.name,
    }
    deadline = schedules.EntryPolicy.of(entry.options).deadline_seconds
    if deadline is not None:
        options["expires"] = (missed.latest if missed else now) + timedelta(seconds=deadline)
    return options


class HeartbeatRedBeatScheduler(RedBeatScheduler):
    """RedBeat (a Redis lock keeps a second Beat from firing) that also proves it is alive.

    Each tick touches BEAT_HEARTBEAT_FILE, read by the container health check: a Beat that is
    stuck, or waiting for the lock held by another Beat, stops touching it.

    RedBeat extends its lock on every tick through a Redis client that bypasses its own retry
    setting (`retry_period`), so the first Redis error would end Beat, and with it every periodic
    task, the signup sweep included. Here a tick that meets an unreachable Redis, or one that
    refuses writes (READONLY, OOM), sends nothing and tries again on the next one, however long the
    outage. Still one Beat fires: RedBeat extends the lock before it sends anything in a tick, so a
    Beat whose extension was refused sends nothing, and no Beat can take a lock Redis will not
    write. A Beat whose lock expired meanwhile (an outage longer than the lock timeout, or a Redis
    that came back empty) takes it again and writes the schedule again before it sends anything;
    if another Beat took it, this one waits as a standby.
    """

    waiting_for_lock = False

    def tick(self, *args, **kwargs) -> float:
        try:
            if not self.holds_lock():
                return self.max_interval
            next_tick_in = super().tick(*args, **kwargs)
        except REDIS_UNAVAILABLE as exc:
            logger.warning(
                "beat: Redis unavailable (%s); sending nothing until it answers and accepts writes",
                type(exc).__name__,
            )
            next_tick_in = self.max_interval
        except LockNotOwnedError:  # expired between the check and the extension
            logger.warning("beat: lost the scheduler lock; taking it again on the next tick")
            next_tick_in = self.max_interval
        touch(settings.BEAT_HEARTBEAT_FILE)
        return next_tick_in

    def holds_lock(self) -> bool:
        """Whether this Beat holds the scheduler lock, taking it when it is free."""
        if not self.lock_key or (self.lock is not None and self.lock.owned()):
            return True
        if self.lock is None:  # taking it at start-up failed (RedBeat logs and leaves it None)
            self.lock = self.new_lock()
        acquired = self.lock.acquire(blocking=False)
        if acquired:
            logger.info("beat: Acquired lock")
            self.setup_schedule()  # the entries may be gone with the lock
        elif not self.waiting_for_lock:
            logger.warning("beat: the scheduler lock is held by another Beat; waiting for it")
        self.waiting_for_lock = not acquired
        return acquired

    def new_lock(self):
        client = get_redis(self.app)
        lock = client.lock(self.lock_key, timeout=self.lock_timeout, sleep=self.max_interval)
        lock.lua_extend = client.register_script(LUA_EXTEND_TO_SCRIPT)
        return lock

    def setup_schedule(self) -> None:
        """RedBeat's, and each entry's record: its clock starts, and removed entries' records go."""
        client = get_redis(self.app)
        conf = self.app.redbeat_conf
        previous = {_text(name) for name in client.smembers(conf.statics_key)}
        super().setup_schedule()
        current = set(conf.schedule or {})
        schedule_state.mark_scheduled(client, current, previous - current, time.time())

    def maybe_due(self, entry: ScheduleEntry, **kwargs) -> float:
        """RedBeat's, after the entry's catch_up policy has judged the runs that came since it last
        ran: at most one of them runs (the latest, if it can still start within the deadline), the
        others are counted as skipped. An entry whose runs are all skipped waits for its next time."""
        now = self.app.now()
        missed = schedules.missed_runs(entry.schedule, entry.last_run_at, now) if entry.is_due()[0] else None
        if missed is None:
            return super().maybe_due(entry, **kwargs)
        policy = schedules.EntryPolicy.of(entry.options)
        runs = 1 if policy.runs_in_time(missed.lateness_seconds(now)) else 0
        if missed.count > runs:
            schedule_state.add_skipped(get_redis(self.app), entry.name, missed.count - runs, time.time())
            logger.warning(
                "schedule entry %s: %s run(s) Beat could not send on time are skipped (catch_up %s)",
                entry.name,
                missed.count - runs,
                policy.catch_up,
                extra={"schedule_entry": entry.name, "outcome": "skipped", "skipped": missed.count - runs},
            )
        if runs:
            return super().maybe_due(entry, **kwargs)
        entry.reschedule(last_run_at=missed.latest)
        return entry.is_due()[1]

    def apply_async(self, entry: ScheduleEntry, *args, **kwargs):
        # RedBeat loads entries afresh from Redis on every tick, so these options do not stick to
        # the stored definition.
        now = self.app.now()
        entry.options = message_options(entry, now)
        result = super().apply_async(entry, *args, **kwargs)
        try:
            schedule_state.record_sent(get_redis(self.app), entry.name, now.timestamp())
        except REDIS_UNAVAILABLE as exc:
            logger.warning("schedule entry %s: sent, but its record was not updated (%s)", entry.name, exc)
        return result


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
