"""Is a new image compatible with what runs and what waits? The rules of the release gate.

An image reports its release state with `python manage.py release_state` (app/core): the Celery
tasks it registers and where they route, its Beat schedule, its migrations (and which are the
contract step of an expand/contract change), and on request the migrations the database has
applied, the messages the broker holds and django-migration-linter's findings. The checks here
compare that with the worker pools the stack will run and with the previous release:

- the release phase (in `pulumi up`, before any migration) checks the new image against the live
  broker and database: `release_problems`;
- the pull request check compares the pull request's code with what the stack last released:
  `pull_request_problems`;
- a rollback is a release of an older image: the release phase refuses it when the database has
  migrations that image does not have.

Plain data and functions; every problem names the tasks, queues or migrations concerned.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# The line prefix of `manage.py release_state` (app/core/management/commands/release_state.py).
MARKER = "RELEASE_STATE"
# Broker lists that are not Celery queues: remote-control replies and event queues.
NOT_QUEUES = (".reply.celery.pidbox", "celeryev.")


class ReleaseStateError(ValueError):
    """The image did not report a usable release state."""


@dataclass(frozen=True)
class LiveMessages:
    """What the broker holds, counted by task name."""

    queues: Mapping[str, Mapping[str, int]]  # queue -> task -> waiting messages
    unacked: Mapping[str, int]  # task -> unacknowledged or delayed (countdown/ETA) messages
    beat_entries: Mapping[str, str]  # dynamic Beat entry -> task

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LiveMessages:
        queues = {
            queue: dict(tasks)
            for queue, tasks in data.get("queues", {}).items()
            if not any(marker in queue for marker in NOT_QUEUES)
        }
        return cls(queues, dict(data.get("unacked", {})), dict(data.get("beat_entries", {})))


@dataclass(frozen=True)
class ReleaseState:
    tasks: tuple[str, ...]
    routes: Mapping[str, str]  # task -> queue
    beat: Mapping[str, Mapping[str, Any]]  # Beat entry -> {"task", "queue"}
    migrations: tuple[str, ...]  # "app_label.name", on disk
    contract: tuple[str, ...] = ()  # migrations marked as the contract step
    retired: tuple[str, ...] = ()  # tasks this release removes on purpose
    applied: tuple[str, ...] | None = None  # in the database, with --applied
    live: LiveMessages | None = None  # with --live
    lint: Mapping[str, Sequence[str]] = field(default_factory=dict)  # migration -> findings, with --lint

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReleaseState:
        try:
            return cls(
                tasks=tuple(data["tasks"]),
                routes=dict(data["routes"]),
                beat={name: dict(entry) for name, entry in data["beat"].items()},
                migrations=tuple(data["migrations"]),
                contract=tuple(data.get("contract", ())),
                retired=tuple(data.get("retired", ())),
                applied=tuple(data["applied"]) if data.get("applied") is not None else None,
                live=LiveMessages.from_dict(data["live"]) if data.get("live") is not None else None,
                lint={name: tuple(found) for name, found in (data.get("lint") or {}).items()},
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise ReleaseStateError(f"the release state lacks or garbles {error}") from None

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> ReleaseState:
        """Reassembles the state from the marked lines among any others (a task's log)."""
        parts: dict[int, str] = {}
        expected = 0
        for line in lines:
            marker, _, rest = line.partition(" ")
            if marker != MARKER:
                continue
            numbering, _, text = rest.partition(" ")
            number, _, total = numbering.partition("/")
            parts[int(number)], expected = text, int(total)
        if not parts or sorted(parts) != list(range(1, expected + 1)):
            raise ReleaseStateError(f"found {len(parts)} of {expected or 'the'} {MARKER} lines")
        return cls.from_dict(json.loads("".join(parts[number] for number in sorted(parts))))

    def consumed_routes(self) -> dict[str, list[str]]:
        """Queue -> the tasks and Beat entries that send messages to it."""
        senders: dict[str, list[str]] = {}
        for task, queue in self.routes.items():
            senders.setdefault(queue, []).append(task)
        for name, entry in self.beat.items():
            senders.setdefault(entry["queue"], []).append(f"Beat entry {name}")
        return senders


@dataclass(frozen=True)
class Problem:
    kind: str  # "tasks", "queues" or "migrations"
    message: str

    def __str__(self) -> str:
        return self.message


# --- the release phase: the new image against the live broker and database ----------------------


def release_problems(state: ReleaseState, consumed_queues: Iterable[str]) -> list[Problem]:
    """Why this image must not be released now (none: release it)."""
    return [
        *unregistered_messages(state),
        *unscheduled_beat(state),
        *unconsumed_queues(state, frozenset(consumed_queues)),
        *unknown_applied_migrations(state),
    ]


def unregistered_messages(state: ReleaseState) -> list[Problem]:
    """Messages the broker holds for tasks this image does not register: a worker would reject them."""
    if state.live is None:
        return []
    known, live = set(state.tasks), state.live
    waiting = [
        f"{count} message(s) for task {task}, which this image does not register, wait in queue {queue}"
        for queue, tasks in sorted(live.queues.items())
        for task, count in sorted(tasks.items())
        if task not in known
    ]
    held = [
        f"{count} unacknowledged or delayed (countdown/ETA) message(s) for task {task}, which this "
        "image does not register"
        for task, count in sorted(live.unacked.items())
        if task not in known
    ]
    scheduled = [
        f"the Beat entry {entry} schedules task {task}, which this image does not register"
        for entry, task in sorted(live.beat_entries.items())
        if task not in known
    ]
    return [Problem("tasks", message) for message in [*waiting, *held, *scheduled]]


def unscheduled_beat(state: ReleaseState) -> list[Problem]:
    """Beat schedule entries of this image whose task it does not register."""
    known = set(state.tasks)
    return [
        Problem(
            "tasks",
            f"the Beat schedule entry {name} names task {entry['task']}, which this image does not register",
        )
        for name, entry in sorted(state.beat.items())
        if entry["task"] not in known
    ]


def unconsumed_queues(state: ReleaseState, consumed: frozenset[str]) -> list[Problem]:
    """Queues that receive messages (routes, Beat, or waiting ones) and that no worker pool consumes."""
    problems = [
        Problem(
            "queues", f"queue {queue} receives {', '.join(sorted(senders))} and no worker pool consumes it"
        )
        for queue, senders in sorted(state.consumed_routes().items())
        if queue not in consumed
    ]
    routed = set(state.consumed_routes())
    live_queues = state.live.queues if state.live else {}
    for queue, tasks in sorted(live_queues.items()):
        waiting = sum(tasks.values())
        if waiting and queue not in consumed and queue not in routed:
            message = f"queue {queue} holds {waiting} message(s) and no worker pool consumes it"
            problems.append(Problem("queues", message))
    return problems


def unknown_applied_migrations(state: ReleaseState) -> list[Problem]:
    """Migrations the database has applied that this image does not have: it is older than the schema."""
    if state.applied is None:
        return []
    unknown = sorted(set(state.applied) - set(state.migrations))
    if not unknown:
        return []
    return [
        Problem(
            "migrations",
            f"the database has applied {len(unknown)} migration(s) this image does not have: "
            f"{', '.join(unknown)}; its code would run against a schema it does not know",
        )
    ]


# --- the pull request: the new code against the last release of the stack -----------------------


def pull_request_problems(
    previous: ReleaseState | None, state: ReleaseState, consumed_queues: Iterable[str]
) -> list[Problem]:
    """Why this change must not be merged as it is, compared with what the stack runs."""
    problems = [*unscheduled_beat(state), *unconsumed_queues(state, frozenset(consumed_queues))]
    if previous is not None:
        problems += removed_tasks(previous, state)
    return problems + incompatible_migrations(state, new_migrations(previous, state))


def removed_tasks(previous: ReleaseState, state: ReleaseState) -> list[Problem]:
    removed = sorted(set(previous.tasks) - set(state.tasks) - set(state.retired))
    if not removed:
        return []
    return [
        Problem(
            "tasks",
            f"task(s) {', '.join(removed)} are registered by the running image and not by this one: "
            "messages for them that are queued, delayed or scheduled would fail. Stop sending them "
            "first; in the release that removes them, list them in RELEASE_RETIRED_TASKS (the release "
            "phase still refuses while messages for them wait)",
        )
    ]


def new_migrations(previous: ReleaseState | None, state: ReleaseState) -> list[str]:
    """Migrations of `state` that the previous release did not have (all of them without one)."""
    known = set(previous.migrations) if previous is not None else set()
    return [name for name in state.migrations if name not in known]


def incompatible_migrations(state: ReleaseState, names: Iterable[str]) -> list[Problem]:
    contract = set(state.contract)
    return [
        Problem(
            "migrations",
            f"migration {name} is not backward compatible ({'; '.join(state.lint[name])}): the running "
            "version would fail while it runs. Split it into expand and contract releases, and mark the "
            "contract migration with `contract = True` once no running code uses what it removes",
        )
        for name in names
        if state.lint.get(name) and name not in contract
    ]
