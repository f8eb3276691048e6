"""What a change does to the Beat schedule, entry by entry: for the release check and the pull request.

Compares the schedule the stack's last release recorded with the one the change's image reports
(both `beatSchedule` as `manage.py release_state` writes it): entries added or removed, and for
the others a changed task, schedule, period or policy. Plain data, and a short Markdown rendering.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infra.schedules.alarms import duration
from infra.schedules.record import ScheduledEntry

# The fields compared, as the plain data names them.
FIELDS = ("task", "schedule", "period_seconds", "policy")


@dataclass(frozen=True)
class EntryChange:
    entry: str
    change: str  # "added", "removed" or "changed"
    before: ScheduledEntry | None
    after: ScheduledEntry | None

    @property
    def changed_fields(self) -> tuple[str, ...]:
        if self.before is None or self.after is None:
            return ()
        return tuple(field for field in FIELDS if _value(self.before, field) != _value(self.after, field))

    def as_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"entry": self.entry, "change": self.change}
        if self.change == "changed":
            data["fields"] = {
                field: {"before": _value(self.before, field), "after": _value(self.after, field)}
                for field in self.changed_fields
            }
        else:
            data["fields"] = {field: _value(self.before or self.after, field) for field in FIELDS}
        return data


def schedule_changes(
    before: Mapping[str, ScheduledEntry], after: Mapping[str, ScheduledEntry]
) -> list[EntryChange]:
    """Every entry added, removed or changed, by entry name."""
    changes = []
    for name in sorted({*before, *after}):
        old, new = before.get(name), after.get(name)
        if old is None:
            changes.append(EntryChange(name, "added", None, new))
        elif new is None:
            changes.append(EntryChange(name, "removed", old, None))
        elif EntryChange(name, "changed", old, new).changed_fields:
            changes.append(EntryChange(name, "changed", old, new))
    return changes


def changes_markdown(changes: list[EntryChange]) -> str:
    """A table for the pull request comment; one line when nothing changes."""
    if not changes:
        return "Beat schedule: unchanged.\n"
    rows = ["| Beat entry | change |", "|---|---|"]
    for change in changes:
        rows.append(f"| `{change.entry}` | {_change_text(change)} |")
    return "\n".join(rows) + "\n"


def _change_text(change: EntryChange) -> str:
    if change.change != "changed":
        entry = change.after if change.change == "added" else change.before
        assert entry is not None
        return f"**{change.change}**: {_describe(entry)}"
    return "; ".join(
        f"{field.replace('_seconds', '')} {_shown(change.before, field)} → {_shown(change.after, field)}"
        for field in change.changed_fields
    )


def _describe(entry: ScheduledEntry) -> str:
    parts = [f"`{entry.task}`", entry.schedule]
    if entry.policy is not None:
        parts.append(entry.policy.text())
    return ", ".join(part for part in parts if part)


def _value(entry: ScheduledEntry | None, field: str) -> Any:
    value = getattr(entry, field) if entry is not None else None
    if field == "policy" and value is not None:
        return {
            "catch_up": value.catch_up,
            "overlap": value.overlap,
            "deadline_seconds": value.deadline_seconds,
        }
    return value


def _shown(entry: ScheduledEntry | None, field: str) -> str:
    value = getattr(entry, field) if entry is not None else None
    if value is None:
        return "unknown"
    if field == "period_seconds":
        return duration(value)
    if field == "policy":
        return str(value.text())
    return f"`{value}`" if field == "task" else str(value)
