"""`manage.py schedules`: every Beat schedule entry with its last run, next run, last success and state.

    python manage.py schedules [--json] [--stale-periods N] [--stale-minimum-seconds S]

A table for people, or with --json one JSON line for machines (`python -m infra.ops` runs it as a
one-off task and reads its log). Read from Redis: each entry's record (core.schedule_state) and its
next time as Beat stored it (RedBeat). The state of an entry:

- `failing`: its last run failed;
- `late`: it has not succeeded for longer than max(N x its period, S) (since Beat first scheduled
  it, if it never has; an entry Beat never scheduled is late too): its alarm fires;
- `skipped`: its runs were skipped (catch_up, deadline) or overlapped since its last success;
- `ok` otherwise.

N and S default to the alarm's defaults (queuemetrics.schema); pass the stack's own values
(scheduleAlarmPeriods, scheduleAlarmMinimumMinutes x 60) to judge as its alarms do.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import current_app
from celery.schedules import maybe_schedule
from django.core.management.base import BaseCommand, CommandParser
from redbeat.schedulers import RedBeatSchedulerEntry, get_redis

from core import schedule_state, schedules
from core.schedule_state import EntryRecord
from queuemetrics import schema

COLUMNS = ("entry", "schedule", "policy", "last_run", "next_run", "last_success", "state")


class Command(BaseCommand):
    help = "List the Beat schedule entries with their last run, next run, last success and state."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", dest="as_json", action="store_true", help="one JSON line, not a table")
        parser.add_argument("--stale-periods", type=float, default=schema.STALE_AFTER_PERIODS)
        parser.add_argument("--stale-minimum-seconds", type=float, default=schema.STALE_AFTER_MINIMUM_SECONDS)

    def handle(
        self,
        *args: object,
        as_json: bool,
        stale_periods: float,
        stale_minimum_seconds: float,
        **options: object,
    ) -> None:
        app = current_app._get_current_object()
        entries = entry_reports(app, time.time(), stale_periods, stale_minimum_seconds)
        if as_json:
            self.stdout.write(as_json_line(entries))
        else:
            for line in table(entries):
                self.stdout.write(line)


def entry_reports(
    app: Any, now: float, stale_periods: float, stale_minimum_seconds: float
) -> list[dict[str, Any]]:
    beat_schedule = app.conf.beat_schedule or {}
    client = get_redis(app)
    records = schedule_state.read_records(client, beat_schedule)
    reports = []
    for name, spec in beat_schedule.items():
        schedule = maybe_schedule(spec["schedule"])
        period = schedules.period_seconds(schedule)
        record = records[name]
        stale_after = (
            schema.stale_after_seconds(period, stale_periods, stale_minimum_seconds) if period else None
        )
        reports.append(
            {
                "entry": name,
                "task": spec["task"],
                "schedule": schedules.describe(schedule),
                "period_seconds": period,
                "policy": schedules.EntryPolicy.of(spec.get("options")).record(),
                "last_run": iso(record.started_at),
                "next_run": next_run(app, name),
                "last_success": iso(record.succeeded_at),
                "last_failure": iso(record.failed_at),
                "failure": record.failure,
                "skipped": record.skipped,
                "overlapped": record.overlapped,
                "seconds_since_success": record.seconds_since_success(now),
                "stale_after_seconds": stale_after,
                "state": entry_state(record, stale_after, now),
            }
        )
    return reports


def entry_state(record: EntryRecord, stale_after: float | None, now: float) -> str:
    """failing, late, skipped or ok (see the module docstring); an entry without a period is never late."""
    if record.failed_at is not None and (
        record.succeeded_at is None or record.failed_at > record.succeeded_at
    ):
        return "failing"
    since_success = record.seconds_since_success(now)
    if stale_after is not None and (since_success is None or since_success > stale_after):
        return "late"
    last_skip = max(record.skipped_at or 0.0, record.overlapped_at or 0.0)
    if last_skip and last_skip > (record.succeeded_at or 0.0):
        return "skipped"
    return "ok"


def next_run(app: Any, name: str) -> str | None:
    """When Beat will next send the entry, from the last run it stored (None: Beat has not stored
    the entry); now, when it is overdue."""
    try:
        entry = RedBeatSchedulerEntry.from_key(RedBeatSchedulerEntry.generate_key(app, name), app=app)
    except KeyError:
        return None
    now = app.now()
    if entry.last_run_at is None:
        return now.astimezone(UTC).isoformat()
    remaining = entry.schedule.remaining_estimate(entry.last_run_at)
    return (now + max(remaining, timedelta(0))).astimezone(UTC).isoformat()


def iso(epoch: float | None) -> str | None:
    return datetime.fromtimestamp(epoch, UTC).isoformat() if epoch is not None else None


def as_json_line(entries: list[dict[str, Any]]) -> str:
    return json.dumps({"generated_at": datetime.now(UTC).isoformat(), "entries": entries}, sort_keys=True)


def table(entries: list[dict[str, Any]]) -> list[str]:
    """Aligned columns; times to the second, in UTC."""
    rows = [[column.replace("_", " ") for column in COLUMNS]]
    for entry in entries:
        policy = entry["policy"]
        deadline = policy["deadline_seconds"]
        rows.append(
            [
                entry["entry"],
                entry["schedule"],
                f"catch_up {policy['catch_up']}"
                + (f" ({deadline:g} s)" if deadline is not None else "")
                + f", overlap {policy['overlap']}",
                *(short_time(entry[key]) for key in ("last_run", "next_run", "last_success")),
                entry["state"],
            ]
        )
    widths = [max(len(row[index]) for row in rows) for index in range(len(COLUMNS))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def short_time(value: str | None) -> str:
    return value[:19].replace("T", " ") if value else "-"
