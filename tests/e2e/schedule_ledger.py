"""Per Beat schedule entry: the runs that were due, and what became of each.

Read from what the processes did, not from what they were asked: every run a worker started,
finished, refused (overlap) or dropped (deadline) is one JSON log line with the entry and the slot
it stood for (core.scheduled_task); every run Beat skipped is counted in a Beat log line
(core.beat); the entry's record in Redis holds the product's own counters.

For an interval entry the slots follow each other one interval apart, re-anchored at each send:
between two slots that reached a worker, floor(gap / interval) - 1 slots never did, and each must
be one Beat counted as skipped. So every slot is accounted for:

    slots = ran + overlapped + expired + skipped by Beat + missed,    missed must be 0,

and each slot reaches a worker at most once (more would be a slot Beat sent twice).

For a `catch_up: once` entry, every gap must also start with a made-up run: Beat sent the first slot
it missed, and a worker met it at least an interval late (and ran it, or refused it by the entry's
own overlap policy: still not missed). Runs of an `overlap: skip` entry never overlap in time.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any

from core.schedule_state import EntryRecord
from tests.e2e.stack import Container

RUN_OUTCOMES = ("succeeded", "failed")
# Slots are datetimes with microseconds; a gap of exactly k intervals must count as k.
SLOT_TOLERANCE = 1e-3


@dataclass(frozen=True)
class EntryEvent:
    outcome: str  # succeeded, failed, retried, overlapped, expired (workers); skipped (Beat)
    slot: datetime | None
    started_at: float | None = None  # a run's start; when a worker refused or dropped it otherwise
    finished_at: float | None = None
    skipped: int = 0  # Beat: runs skipped at once


def entry_events(processes: Iterable[Container], entry: str) -> list[EntryEvent]:
    """Every event of `entry` in the logs of `processes` (workers and Beats, killed ones included)."""
    events = []
    for process in processes:
        for line in process.output().splitlines():
            fields = _json(line)
            if fields.get("schedule_entry") != entry:
                continue
            slot = fields.get("scheduled_for")
            events.append(
                EntryEvent(
                    outcome=fields["outcome"],
                    slot=datetime.fromisoformat(slot) if slot else None,
                    started_at=fields.get("started_at", fields.get("at")),
                    finished_at=fields.get("finished_at"),
                    skipped=int(fields.get("skipped", 0)),
                )
            )
    return events


@dataclass(frozen=True)
class ScheduleResult:
    scenario: str
    entry: str
    policy: str  # catch_up/overlap, e.g. once/skip
    slots: int  # runs that were due
    ran: int  # ... that ran (succeeded or failed)
    skipped: int  # ... that Beat did not send, or that waited past their deadline (counted)
    overlapped: int  # ... that did not start: the previous run still ran (counted)
    missed: int  # ... none of the above: silently lost
    # Slots a worker met at least an interval after their time: made up by Beat after it missed
    # them, or kept waiting for a worker.
    late: int
    unmade_gaps: int  # gaps after which a `once` entry made nothing up
    duplicated: int  # slots that reached a worker more than once (sent twice)
    overlapping: int  # runs that started while another run of the entry still ran
    counters_agree: bool  # the record's skipped/overlapped counters say what the logs say

    def problems(self) -> str:
        return (
            f"{self.scenario}/{self.entry}: {self.slots} due, {self.ran} ran, {self.skipped} skipped, "
            f"{self.overlapped} overlapped, {self.missed} missed, {self.late} late, "
            f"{self.unmade_gaps} gaps not made up, "
            f"{self.duplicated} duplicated, {self.overlapping} overlapping, "
            f"counters agree: {self.counters_agree}"
        )

    @property
    def sound(self) -> bool:
        return (
            not (self.missed or self.unmade_gaps or self.duplicated or self.overlapping)
            and self.counters_agree
        )


def schedule_result(
    scenario: str,
    entry: str,
    interval: float,
    policy: tuple[str, str],
    events: list[EntryEvent],
    record: EntryRecord,
) -> ScheduleResult:
    catch_up, overlap = policy
    runs = [event for event in events if event.outcome in RUN_OUTCOMES]
    reached = sorted({event.slot for event in events if event.slot is not None})
    gaps = [
        (earlier, math.floor((later - earlier).total_seconds() / interval + SLOT_TOLERANCE))
        for earlier, later in pairwise(reached)
    ]
    slots = len(reached) + sum(steps - 1 for _start, steps in gaps)
    expired = sum(event.outcome == "expired" for event in events)
    overlapped = sum(event.outcome == "overlapped" for event in events)
    beat_skipped = sum(event.skipped for event in events if event.outcome == "skipped")
    met = [event for event in events if event.slot is not None and event.started_at is not None]
    late = {event.slot for event in met if _late_by(event) >= interval - SLOT_TOLERANCE}
    per_slot = Counter(event.slot for event in events if event.slot is not None)
    return ScheduleResult(
        scenario=scenario,
        entry=entry,
        policy=f"{catch_up}/{overlap}",
        slots=slots,
        ran=len({event.slot for event in runs}),
        skipped=beat_skipped + expired,
        overlapped=overlapped,
        missed=slots - len(reached) - beat_skipped,
        late=len(late),
        unmade_gaps=sum(1 for start, steps in gaps if steps > 1 and start not in late)
        if catch_up == "once"
        else 0,
        duplicated=sum(1 for count in per_slot.values() if count > 1),
        overlapping=_overlapping(runs) if overlap == "skip" else 0,
        counters_agree=(record.skipped, record.overlapped) == (beat_skipped + expired, overlapped),
    )


def _late_by(run: EntryEvent) -> float:
    assert run.slot is not None and run.started_at is not None
    return run.started_at - run.slot.timestamp()


def _overlapping(runs: list[EntryEvent]) -> int:
    """Runs that started before every earlier run of the entry had finished."""
    overlapping, busy_until = 0, -math.inf
    for run in sorted(runs, key=lambda event: event.started_at or 0.0):
        assert run.started_at is not None and run.finished_at is not None
        overlapping += run.started_at < busy_until
        busy_until = max(busy_until, run.finished_at)
    return overlapping


def _json(line: str) -> dict[str, Any]:
    if not line.startswith("{"):
        return {}
    try:
        fields = json.loads(line)
    except ValueError:
        return {}
    return fields if isinstance(fields, dict) else {}
