"""The Beat scheduler: celery-redbeat, plus a heartbeat file, the slot of every periodic run, and
riding out Redis outages."""

import logging
from datetime import datetime

import redis
from celery.beat import ScheduleEntry
from celery.schedules import schedule as interval_schedule
from django.conf import settings
from redbeat import RedBeatScheduler
from redbeat.schedulers import LUA_EXTEND_TO_SCRIPT, get_redis
from redis.exceptions import LockNotOwnedError

from core.heartbeat import touch

logger = logging.getLogger(__name__)

# Redis is unreachable, or answered too late (an outage, a failover in progress).
REDIS_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError)

# Message header naming the occurrence of the schedule that a periodic message was sent for.
SCHEDULED_FOR_HEADER = "scheduled_for"


def scheduled_for(entry: ScheduleEntry, now: datetime) -> datetime:
    """When the occurrence that is being sent was due.

    For an interval schedule it is the previous run plus the interval, a value every Beat reads from
    the same Redis entry: two Beats firing the same occurrence stamp the same time, so a double
    firing shows up as two runs of one slot (see signups.models.PeriodicRun).
    """
    if entry.last_run_at is not None and isinstance(entry.schedule, interval_schedule):
        return entry.last_run_at + entry.schedule.run_every
    return now


class HeartbeatRedBeatScheduler(RedBeatScheduler):
    """RedBeat (a Redis lock keeps a second Beat from firing) that also proves it is alive.

    Each tick touches BEAT_HEARTBEAT_FILE, read by the container health check: a Beat that is
    stuck, or waiting for the lock held by another Beat, stops touching it.

    RedBeat extends its lock on every tick through a Redis client that bypasses its own retry
    setting (`retry_period`), so the first Redis error would end Beat, and with it every periodic
    task, the signup sweep included. Here a tick that meets an unreachable Redis sends nothing and
    tries again on the next one, however long the outage. A Beat whose lock expired meanwhile (an
    outage longer than the lock timeout, or a Redis that came back empty) takes it again and
    writes the schedule again before it sends anything; if another Beat took it, this one waits
    as a standby.
    """

    waiting_for_lock = False

    def tick(self, *args, **kwargs) -> float:
        try:
            if not self.holds_lock():
                return self.max_interval
            next_tick_in = super().tick(*args, **kwargs)
        except REDIS_UNAVAILABLE as exc:
            logger.warning(
                "beat: Redis unavailable (%s); sending nothing until it answers", type(exc).__name__
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

    def apply_async(self, entry: ScheduleEntry, *args, **kwargs):
        # RedBeat loads entries afresh from Redis on every tick, so this header does not stick to
        # the stored definition.
        slot = scheduled_for(entry, self.app.now())
        entry.options = {
            **entry.options,
            "headers": {**entry.options.get("headers", {}), SCHEDULED_FOR_HEADER: slot.isoformat()},
        }
        return super().apply_async(entry, *args, **kwargs)
