"""The Beat scheduler: celery-redbeat, plus a heartbeat file and the slot of every periodic run."""

from datetime import datetime

from celery.beat import ScheduleEntry
from celery.schedules import schedule as interval_schedule
from django.conf import settings
from redbeat import RedBeatScheduler

from core.heartbeat import touch

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
    """

    def tick(self, *args, **kwargs) -> float:
        next_tick_in = super().tick(*args, **kwargs)
        touch(settings.BEAT_HEARTBEAT_FILE)
        return next_tick_in

    def apply_async(self, entry: ScheduleEntry, *args, **kwargs):
        # RedBeat loads entries afresh from Redis on every tick, so this header does not stick to
        # the stored definition.
        slot = scheduled_for(entry, self.app.now())
        entry.options = {
            **entry.options,
            "headers": {**entry.options.get("headers", {}), SCHEDULED_FOR_HEADER: slot.isoformat()},
        }
        return super().apply_async(entry, *args, **kwargs)
