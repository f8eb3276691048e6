"""The operational summary of a change, for the pull request comment next to the Pulumi diff.

What a reviewer needs to know before a merge deploys: whether the release check passes (and why
not), which migrations will run, whether Beat restarts, and how worker pools change (minimum,
maximum, scale to zero, pools added or removed). Built from the stack's release record (what runs)
and the pull request's code and config; plain functions returning Markdown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from infra.release.compatibility import Problem, ReleaseState, new_migrations
from infra.release.record import ReleaseRecord


@dataclass(frozen=True)
class Change:
    """The pull request's side: its code's release state and its stack settings."""

    state: ReleaseState
    image_tag: str | None  # the build's tag; None when the stack promotes an image
    image_source: str  # "build", "imageRef" or "stack <name>"
    pools: Mapping[str, Mapping[str, Any]]  # as record.operations() writes them
    beat: Mapping[str, Any]


def release_summary(
    stack: str, record: ReleaseRecord | None, change: Change, problems: Sequence[Problem]
) -> str:
    verdict = "refused" if problems else "passed"
    lines = [f"### Release check for `{stack}`: {verdict}", ""]
    if problems:
        lines += ["**Refused:**", *(f"- {problem}" for problem in problems), ""]
    lines += [
        "| | |",
        "|---|---|",
        f"| Image | {image_line(record, change)} |",
        f"| Migrations that will run | {migrations_line(record, change)} |",
        f"| Beat | {beat_line(record, change)} |",
        "",
        *pools_table(record.pools if record else {}, change.pools),
    ]
    if record is None:
        lines += [
            "",
            f"_`{stack}` has no release record yet (never deployed, or by an older program): "
            "nothing to compare tasks and migrations with._",
        ]
    return "\n".join(lines) + "\n"


def image_line(record: ReleaseRecord | None, change: Change) -> str:
    if change.image_tag is None:
        return f"promoted at deploy time ({change.image_source}); nothing is built"
    if record is None or record.image_tag is None:
        return f"new build `{change.image_tag}`"
    if record.image_tag == change.image_tag:
        return f"unchanged (`{change.image_tag}`): no new release"
    return f"new build `{change.image_tag}` (runs `{record.image_tag}`)"


def image_changes(record: ReleaseRecord | None, change: Change) -> bool:
    return change.image_tag is None or record is None or record.image_tag != change.image_tag


def migrations_line(record: ReleaseRecord | None, change: Change) -> str:
    if not image_changes(record, change):
        return "none"
    previous = record.state if record else None
    added = new_migrations(previous, change.state) if previous else []
    if previous is None:
        return "unknown: no release record to compare with"
    contract = set(change.state.contract)
    names = [f"`{name}`" + (" (contract step)" if name in contract else "") for name in added]
    return ", ".join(names) or "none"


def beat_line(record: ReleaseRecord | None, change: Change) -> str:
    before = dict(record.beat) if record else {}
    after = dict(change.beat)
    if not after.get("enabled"):
        return "turned off" if before.get("enabled") else "off"
    if before and not before.get("enabled"):
        return "turned on"
    settings = sorted(
        key for key in ("spot", "cpu", "memory") if before and before.get(key) != after.get(key)
    )
    reasons = (["new image"] if image_changes(record, change) else []) + [
        f"{key} changes" for key in settings
    ]
    if not reasons:
        return "unchanged"
    return (
        f"restarts ({', '.join(reasons)}): the old Beat stops before the new one starts, so periodic "
        "tasks pause for about a minute"
    )


def pools_table(before: Mapping[str, Mapping[str, Any]], after: Mapping[str, Mapping[str, Any]]) -> list[str]:
    rows = ["| worker pool | queues | min | max | change |", "|---|---|---|---|---|"]
    for name in sorted({*before, *after}):
        old, new = before.get(name), after.get(name)
        if new is None:
            rows.append(f"| {name} | {', '.join(old['queues'])} | | | **removed** |")  # type: ignore[index]
            continue
        low, high = _moved(old, new, "minCount"), _moved(old, new, "maxCount")
        rows.append(f"| {name} | {', '.join(new['queues'])} | {low} | {high} | {pool_change(old, new)} |")
    return rows


def _moved(old: Mapping[str, Any] | None, new: Mapping[str, Any], key: str) -> str:
    if old is None or old[key] == new[key]:
        return str(new[key])
    return f"{old[key]} → {new[key]}"


def pool_change(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> str:
    if old is None:
        return "**new pool**"
    notes = []
    if old["minCount"] > 0 and new["minCount"] == 0:
        notes.append(
            "now scales to zero: after an idle period the first message waits for a worker to start "
            "(about a minute)"
        )
    if old["minCount"] == 0 and new["minCount"] > 0:
        notes.append("no longer scales to zero")
    if sorted(old["queues"]) != sorted(new["queues"]):
        notes.append(f"queues were {', '.join(old['queues'])}")
    if not notes and (old["minCount"], old["maxCount"]) != (new["minCount"], new["maxCount"]):
        notes.append("range changes")
    return "; ".join(notes) or "—"
