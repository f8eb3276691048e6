"""Beat schedule entries: each one's policy, its period, and the runs Beat missed.

An entry of CELERY_BEAT_SCHEDULE declares its policy in its options, under POLICY_OPTION:

    "requeue-stale-signups": {
        "task": "signups.tasks.requeue_stale_signups",
        "schedule": 30,
        "options": {"policy": {"catch_up": "skip", "deadline": 30, "overlap": "skip"}},
    }

- `catch_up`: what becomes of runs Beat could not send on time (Beat stopped, killed or deploying,
  Redis unreachable). `once` (the default): when Beat is back, the entry runs once for all of
  them; `skip`: they do not run, and the entry waits for its next time. Missed runs that do not
  run are counted as skipped.
- `deadline`: how many seconds after its time a run may still start, in Beat and in the queue; a
  run past it is skipped (and counted). Default: none for `once` (a made-up run is never too late,
  and its message waits for a worker however long the pool is at zero), SKIP_DEADLINE_SECONDS for
  `skip`.
- `overlap`: `allow` (the default) or `skip`: a run does not start while the previous run of the
  entry still runs (core.scheduled_task holds a lock for it), and is counted as overlapped.

Only interval (a number of seconds, a timedelta, `celery.schedules.schedule`) and crontab schedules
take a policy: their runs can be counted. Pure functions; Beat (core.beat), the workers
(core.scheduled_task), `manage.py release_state` and `manage.py schedules` use them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from typing import Any

from celery.schedules import crontab, maybe_schedule
from celery.schedules import schedule as interval
from django.core.exceptions import ImproperlyConfigured

from queuemetrics.schema import ENTRY_NAME_PATTERN, ENTRY_NAME_RULE

POLICY_OPTION = "policy"
CATCH_UP_CHOICES = ("once", "skip")
OVERLAP_CHOICES = ("allow", "skip")
POLICY_KEYS = ("catch_up", "deadline", "overlap")
# A `skip` entry's run may start this late by default: Beat hands over in seconds, a deploy takes
# about a minute.
SKIP_DEADLINE_SECONDS = 60
# Celery's own `expires` would drop a run of a `once` entry that waits for a worker; the
# policy's deadline sets it instead.
REFUSED_OPTIONS = ("expires",)
# A crontab's shortest gap between runs shows within these years: they hold every pairing of
# weekday and date, leap days included (the calendar repeats every 28 years from 1901 to 2099).
CRONTAB_SAMPLE_YEARS = range(2000, 2028)
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class EntryPolicy:
    catch_up: str = "once"
    overlap: str = "allow"
    deadline_seconds: float | None = None  # how late a run may start; None: any time

    @classmethod
    def of(cls, options: Mapping[str, Any] | None) -> EntryPolicy:
        """The policy an entry's options declare (the defaults when they declare none)."""
        declared = dict((options or {}).get(POLICY_OPTION) or {})
        catch_up = declared.get("catch_up", cls.catch_up)
        deadline = declared.get("deadline", SKIP_DEADLINE_SECONDS if catch_up == "skip" else None)
        return cls(
            catch_up=catch_up,
            overlap=declared.get("overlap", cls.overlap),
            deadline_seconds=None if deadline is None else float(deadline),
        )

    def runs_in_time(self, lateness_seconds: float) -> bool:
        return self.deadline_seconds is None or lateness_seconds <= self.deadline_seconds

    def record(self) -> dict[str, Any]:
        """As the release record and `manage.py schedules` show it."""
        return {"catch_up": self.catch_up, "overlap": self.overlap, "deadline_seconds": self.deadline_seconds}


def policy_problems(options: Mapping[str, Any] | None) -> list[str]:
    """What is wrong with the policy an entry's options declare (nothing: a valid policy)."""
    options = options or {}
    problems = [
        f"option {name!r} is not allowed; use the policy's deadline"
        for name in REFUSED_OPTIONS
        if name in options
    ]
    declared = options.get(POLICY_OPTION, {})
    if not isinstance(declared, Mapping):
        return [*problems, f"{POLICY_OPTION} must be a mapping of {', '.join(POLICY_KEYS)}"]
    problems += [
        f"unknown policy key {key!r} (known: {', '.join(POLICY_KEYS)})"
        for key in declared
        if key not in POLICY_KEYS
    ]
    for key, choices in (("catch_up", CATCH_UP_CHOICES), ("overlap", OVERLAP_CHOICES)):
        if key in declared and declared[key] not in choices:
            problems.append(f"{key} must be one of {', '.join(choices)}, got {declared[key]!r}")
    deadline = declared.get("deadline")
    if deadline is not None and (
        isinstance(deadline, bool) or not isinstance(deadline, int | float) or not 0 < deadline < math.inf
    ):
        problems.append(f"deadline must be a positive number of seconds, got {deadline!r}")
    return problems


def entry_problems(name: str, spec: Mapping[str, Any]) -> list[str]:
    """What is wrong with one CELERY_BEAT_SCHEDULE entry, each problem naming the entry."""
    problems = [] if ENTRY_NAME_PATTERN.match(name) else [f"the name must be {ENTRY_NAME_RULE}"]
    options = spec.get("options") or {}
    problems += policy_problems(options)
    if POLICY_OPTION in options and period_seconds(maybe_schedule(spec.get("schedule"))) is None:
        problems.append("a policy needs an interval or crontab schedule that runs more than once")
    return [f"Beat schedule entry {name!r}: {problem}" for problem in problems]


def check_beat_schedule(beat_schedule: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise ImproperlyConfigured listing every problem of every entry (config/settings/base.py
    calls it, so web, workers and Beat all refuse a bad schedule at start)."""
    problems = [problem for name, spec in beat_schedule.items() for problem in entry_problems(name, spec)]
    if problems:
        raise ImproperlyConfigured("Invalid CELERY_BEAT_SCHEDULE:\n  - " + "\n  - ".join(problems))


def period_seconds(schedule: Any) -> float | None:
    """The shortest time between two consecutive runs; None for a schedule whose runs cannot be
    counted (solar, custom) or that runs at most once in CRONTAB_SAMPLE_YEARS."""
    if isinstance(schedule, crontab):
        return _crontab_period_seconds(schedule)
    if isinstance(schedule, interval):
        return schedule.run_every.total_seconds()
    return None


def describe(schedule: Any) -> str:
    """A schedule as people read it: `every 30 s`, `crontab 0 3 * * *`."""
    if isinstance(schedule, crontab):
        fields = (
            schedule._orig_minute,
            schedule._orig_hour,
            schedule._orig_day_of_month,
            schedule._orig_month_of_year,
            schedule._orig_day_of_week,
        )
        return "crontab " + " ".join(_cron_field(field) for field in fields)
    if isinstance(schedule, interval):
        return f"every {schedule.run_every.total_seconds():g} s"
    return repr(schedule)


@dataclass(frozen=True)
class MissedRuns:
    """The runs of an entry that have come since it last ran: `count` of them, from `first` to `latest`."""

    count: int
    first: datetime
    latest: datetime

    def lateness_seconds(self, now: datetime) -> float:
        return (now - self.latest).total_seconds()


def missed_runs(schedule: Any, last_run_at: datetime | None, now: datetime) -> MissedRuns | None:
    """The runs due in (last_run_at, now]; None when none is, or when they cannot be counted
    (a schedule without a period, an entry that never ran: Celery's own rules decide)."""
    if last_run_at is None or not isinstance(schedule, crontab | interval):
        return None
    if isinstance(schedule, crontab):
        return _crontab_runs(schedule, last_run_at, now)
    every = schedule.run_every
    first = last_run_at + every
    if first > now:
        return None
    later = (now - first) // every
    return MissedRuns(count=later + 1, first=first, latest=first + later * every)


# --- crontab --------------------------------------------------------------------------------------


def _cron_field(field: Any) -> str:
    if isinstance(field, str):
        return field
    values = sorted(field) if isinstance(field, set | frozenset | list | tuple) else [field]
    return ",".join(str(value) for value in values)


def _runs_on(schedule: crontab, day: date) -> bool:
    # Celery runs a crontab on days that match all three day fields (Sunday is 0).
    return (
        day.month in schedule.month_of_year
        and day.day in schedule.day_of_month
        and day.isoweekday() % 7 in schedule.day_of_week
    )


def _minutes_of_day(schedule: crontab) -> list[int]:
    return sorted(hour * 60 + minute for hour in schedule.hour for minute in schedule.minute)


def _crontab_period_seconds(schedule: crontab) -> float | None:
    minutes = _minutes_of_day(schedule)
    start, end = date(CRONTAB_SAMPLE_YEARS[0], 1, 1), date(CRONTAB_SAMPLE_YEARS[-1] + 1, 1, 1)
    days = [start + _DAY * offset for offset in range((end - start).days)]
    run_days = [day for day in days if _runs_on(schedule, day)]
    gaps = [later - earlier for earlier, later in pairwise(minutes)]
    gaps += [
        (later - earlier).days * 24 * 60 - minutes[-1] + minutes[0] for earlier, later in pairwise(run_days)
    ]
    return min(gaps) * 60.0 if gaps else None


def _run_times(schedule: crontab, after: datetime, until: datetime) -> Iterator[datetime]:
    """The crontab's times in (after, until], in the schedule's time zone."""
    zone = schedule.tz
    minutes = _minutes_of_day(schedule)
    day = after.astimezone(zone).date()
    while day <= until.astimezone(zone).date():
        if _runs_on(schedule, day):
            for minute in minutes:
                at = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=zone)
                if after < at <= until:
                    yield at
        day += _DAY


def _crontab_runs(schedule: crontab, last_run_at: datetime, now: datetime) -> MissedRuns | None:
    times = _run_times(schedule, last_run_at, now)
    first = latest = next(times, None)
    if first is None:
        return None
    count = 1
    for latest in times:  # noqa: B007 - the last one is kept
        count += 1
    return MissedRuns(count, first, latest)
