"""The operational summary of a change, for the pull request comment next to the Pulumi diff.

What a reviewer needs to know before a merge deploys: whether the release check passes (and why
not), which migrations will run, whether Beat restarts, how worker pools change (minimum,
maximum, scale to zero, pools added or removed), how the Beat schedule changes, entry by entry,
and the release notes of the deploy itself: how web moves to the new revision (strategy, canary
share and window, bake) and the alarms that roll it back, and which pools run a canary of the new
image first, for how long. Built from the stack's release record (what runs) and the pull
request's code and config; plain functions returning Markdown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from infra.release.compatibility import Problem, ReleaseState, new_migrations
from infra.release.record import ReleaseRecord
from infra.schedules.changes import changes_markdown, schedule_changes
from infra.schedules.record import recorded_schedule


@dataclass(frozen=True)
class Change:
    """The pull request's side: its code's release state and its stack settings."""

    state: ReleaseState
    image_tag: str | None  # the build's tag; None when the stack promotes an image
    image_source: str  # "build", "imageRef" or "stack <name>"
    pools: Mapping[str, Mapping[str, Any]]  # as record.operations() writes them
    beat: Mapping[str, Any]
    web: Mapping[str, Any]


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
        f"| Web release | {web_release_line(record, change)} |",
        f"| Worker canaries | {worker_canaries_line(change.pools)} |",
        "",
        *pools_table(record.pools if record else {}, change.pools),
        "",
        schedule_section(record, change),
    ]
    if record is None:
        lines += [
            "",
            f"_`{stack}` has no release record yet (never deployed, or by an older program): "
            "nothing to compare tasks and migrations with._",
        ]
    return "\n".join(lines) + "\n"


def schedule_section(record: ReleaseRecord | None, change: Change) -> str:
    """Beat entries added, removed, or with another task, schedule, period or policy."""
    before = recorded_schedule(record.state.beat) if record and record.state else {}
    return changes_markdown(schedule_changes(before, recorded_schedule(change.state.beat))).rstrip("\n")


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


def web_release_line(record: ReleaseRecord | None, change: Change) -> str:
    line = deployment_text(change.web)
    before = record.web.get("deployment") if record else None
    if before and before != change.web.get("deployment"):
        line += f" (was {before})"
    return line


def deployment_text(web: Mapping[str, Any]) -> str:
    """How a web deployment moves traffic, and what rolls it back (infra/web/traffic.py)."""
    strategy = web.get("deployment", "rolling")
    if strategy == "rolling":
        return "rolling: tasks replaced in place; ECS's circuit breaker rolls back tasks that do not start"
    shifts = {
        "canary": f"{web['canaryPercent']:g} % of the traffic for {web['canaryMinutes']} min, then all of it",
        "linear": f"{web['linearStepPercent']:g} % more of the traffic every {web['linearStepMinutes']} min",
        "blue_green": "all of the traffic at once",
    }
    return (
        f"{strategy}: the new revision starts beside the old one and gets {shifts[strategy]}; both are "
        f"kept {web['bakeMinutes']} min (bake). ECS rolls back by itself when the load balancer answers "
        f"more than {web['rollback5xxPercent']} % 5xx or its p99 exceeds {web['rollbackP99Milliseconds']} ms "
        "for 2 minutes in a row"
    )


def worker_canaries_line(pools: Mapping[str, Mapping[str, Any]]) -> str:
    canaried = {name: pool for name, pool in sorted(pools.items()) if pool.get("canaryMinutes")}
    if not canaried:
        return "off: every pool rolls to the new image at once"
    windows = ", ".join(f"{name} {pool['canaryMinutes']} min" for name, pool in canaried.items())
    percent = next(iter(canaried.values()))["canaryMaxFailurePercent"]
    return (
        f"{windows}: one task of the new image consumes the pool's queues first; the release stops, and "
        f"the pool keeps its image, if more than {percent} % of its task runs fail"
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
