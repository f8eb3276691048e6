"""What a change does to the Beat schedule, per entry, for the release check and the pull request."""

from __future__ import annotations

from typing import Any

from infra.schedules.changes import changes_markdown, schedule_changes
from infra.schedules.record import recorded_schedule

HEARTBEAT: dict[str, Any] = {
    "task": "signups.tasks.record_heartbeat",
    "queue": "default",
    "schedule": "every 60 s",
    "period_seconds": 60.0,
    "policy": {"catch_up": "once", "overlap": "skip", "deadline_seconds": None},
}
SWEEP: dict[str, Any] = {
    "task": "signups.tasks.requeue_stale_signups",
    "queue": "default",
    "schedule": "every 30 s",
    "period_seconds": 30.0,
    "policy": {"catch_up": "skip", "overlap": "skip", "deadline_seconds": 30.0},
}
REPORT: dict[str, Any] = {
    "task": "reports.tasks.nightly",
    "queue": "default",
    "schedule": "crontab 0 3 * * *",
    "period_seconds": 86400.0,
    "policy": {"catch_up": "once", "overlap": "allow", "deadline_seconds": 7200.0},
}


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        change.as_data() for change in schedule_changes(recorded_schedule(before), recorded_schedule(after))
    ]


def test_added_removed_period_and_policy_changes_are_listed_per_entry() -> None:
    before = {"record-heartbeat": HEARTBEAT, "requeue-stale-signups": SWEEP}
    after = {
        "record-heartbeat": {**HEARTBEAT, "schedule": "every 120 s", "period_seconds": 120.0},
        "requeue-stale-signups": {**SWEEP, "policy": {**SWEEP["policy"], "catch_up": "once"}},
        "nightly-report": REPORT,
    }
    before["retired"] = {**SWEEP, "task": "signups.tasks.old"}

    listed = changes(before, after)

    assert listed == [
        {
            "entry": "nightly-report",
            "change": "added",
            "fields": {
                "task": "reports.tasks.nightly",
                "schedule": "crontab 0 3 * * *",
                "period_seconds": 86400.0,
                "policy": {"catch_up": "once", "overlap": "allow", "deadline_seconds": 7200.0},
            },
        },
        {
            "entry": "record-heartbeat",
            "change": "changed",
            "fields": {
                "schedule": {"before": "every 60 s", "after": "every 120 s"},
                "period_seconds": {"before": 60.0, "after": 120.0},
            },
        },
        {
            "entry": "requeue-stale-signups",
            "change": "changed",
            "fields": {
                "policy": {
                    "before": {"catch_up": "skip", "overlap": "skip", "deadline_seconds": 30.0},
                    "after": {"catch_up": "once", "overlap": "skip", "deadline_seconds": 30.0},
                }
            },
        },
        {
            "entry": "retired",
            "change": "removed",
            "fields": {
                "task": "signups.tasks.old",
                "schedule": "every 30 s",
                "period_seconds": 30.0,
                "policy": {"catch_up": "skip", "overlap": "skip", "deadline_seconds": 30.0},
            },
        },
    ]


def test_the_markdown_says_what_changes_for_each_entry() -> None:
    before = {"record-heartbeat": HEARTBEAT, "retired": SWEEP}
    after = {
        "record-heartbeat": {**HEARTBEAT, "schedule": "every 7200 s", "period_seconds": 7200.0},
        "nightly-report": REPORT,
    }

    text = changes_markdown(schedule_changes(recorded_schedule(before), recorded_schedule(after)))

    assert text.splitlines() == [
        "| Beat entry | change |",
        "|---|---|",
        "| `nightly-report` | **added**: `reports.tasks.nightly`, crontab 0 3 * * *, "
        "catch_up once, deadline 7200 s, overlap allow |",
        "| `record-heartbeat` | schedule every 60 s → every 7200 s; period 1 min → 2 h |",
        "| `retired` | **removed**: `signups.tasks.requeue_stale_signups`, every 30 s, "
        "catch_up skip, deadline 30 s, overlap skip |",
    ]


def test_an_unchanged_schedule_says_so_in_one_line() -> None:
    schedule = recorded_schedule({"record-heartbeat": HEARTBEAT})
    assert schedule_changes(schedule, schedule) == []
    assert changes_markdown([]) == "Beat schedule: unchanged.\n"


def test_a_record_older_than_the_policies_shows_what_is_new() -> None:
    older = {"record-heartbeat": {"task": HEARTBEAT["task"], "queue": "default"}}

    [change] = schedule_changes(recorded_schedule(older), recorded_schedule({"record-heartbeat": HEARTBEAT}))

    assert change.changed_fields == ("schedule", "period_seconds", "policy")
    assert "period unknown → 1 min" in changes_markdown([change])
    assert "policy unknown → catch_up once, overlap skip" in changes_markdown([change])
