"""The Beat schedule a release recorded, read back as typed entries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Policy:
    """An entry's policy (app/core/schedules.py): what becomes of runs Beat missed, how late a run
    may start, and whether a run may start while the previous one still runs."""

    catch_up: str
    overlap: str
    deadline_seconds: float | None

    def text(self) -> str:
        deadline = f", deadline {self.deadline_seconds:g} s" if self.deadline_seconds is not None else ""
        return f"catch_up {self.catch_up}{deadline}, overlap {self.overlap}"


@dataclass(frozen=True)
class ScheduledEntry:
    name: str
    task: str
    schedule: str  # as people read it: "every 30 s", "crontab 0 3 * * *"
    # The shortest time between two runs; None when its runs cannot be counted, or when the record
    # was written by an image older than the per-entry policies (as is the policy then).
    period_seconds: float | None
    policy: Policy | None


def recorded_schedule(beat_schedule: Mapping[str, Mapping[str, Any]]) -> dict[str, ScheduledEntry]:
    """The entries of a release record's `beatSchedule` (ReleaseState.beat), by name."""
    return {name: _entry(name, fields) for name, fields in beat_schedule.items()}


def _entry(name: str, fields: Mapping[str, Any]) -> ScheduledEntry:
    period = fields.get("period_seconds")
    return ScheduledEntry(
        name=name,
        task=str(fields.get("task", "")),
        schedule=str(fields.get("schedule", "")),
        period_seconds=float(period) if period is not None else None,
        policy=_policy(fields["policy"]) if fields.get("policy") else None,
    )


def _policy(fields: Mapping[str, Any]) -> Policy:
    deadline = fields.get("deadline_seconds")
    return Policy(
        catch_up=str(fields["catch_up"]),
        overlap=str(fields["overlap"]),
        deadline_seconds=float(deadline) if deadline is not None else None,
    )
