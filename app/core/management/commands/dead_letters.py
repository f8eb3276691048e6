"""`manage.py dead_letters`: the messages that were delivered too often, or were not messages at all.

    python manage.py dead_letters list [--json]
    python manage.py dead_letters replay (ID... | --all)
    python manage.py dead_letters drop (ID... | --all)

`list` prints one line per dead letter, oldest first: its id (the task id), queue, task, deliveries,
when and why it was dead-lettered, and the size of its arguments (never the arguments: they may hold
personal data). `replay` publishes a task message again, with the same id and its delivery count
started afresh; an entry that was not a task message cannot be replayed, only dropped. `drop` deletes
them for good. An id that is not in the list is an error (exit code 1); the others are still done.
`python -m infra.ops dead-letters <stack> ...` runs this as a one-off task (core.dead_letters).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from celery import current_app
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core import dead_letters
from core.app_redis import redis_client
from core.dead_letters import DeadLetter

ACTIONS = ("list", "replay", "drop")


class Command(BaseCommand):
    help = "List, replay or drop the dead-lettered task messages."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=ACTIONS)
        parser.add_argument("ids", nargs="*", metavar="ID", help="dead letter ids (replay, drop)")
        parser.add_argument("--all", action="store_true", help="every dead letter (replay, drop)")
        parser.add_argument("--json", dest="as_json", action="store_true", help="list: one JSON line")

    def handle(
        self, *args: Any, action: str, ids: list[str], all: bool, as_json: bool, **options: Any
    ) -> None:
        client = redis_client()
        letters = dead_letters.read_all(client)
        if action == "list":
            if ids or all:
                raise CommandError("list takes no ids and no --all")
            self.list(letters, as_json)
            return
        if bool(ids) == all:
            raise CommandError(f"{action}: give the ids of the dead letters, or --all")
        chosen = letters if all else dead_letters.select(letters, ids)
        found = {letter.id for _, letter in chosen}
        problems = [f"no dead letter {unknown}" for unknown in sorted(set(ids) - found)]
        for stored, letter in chosen:
            if action == "replay" and not letter.replayable:
                problems.append(f"{letter.id} is not a task message ({letter.reason}); drop it instead")
                continue
            if action == "replay":
                dead_letters.replay(client, current_app, letter)
            dead_letters.remove(client, stored)
            self.stdout.write(f"{'replayed' if action == 'replay' else 'dropped'} {letter.id}")
        if problems:
            raise CommandError("; ".join(problems))

    def list(self, letters: list[tuple[bytes, DeadLetter]], as_json: bool) -> None:
        rows = [summary(letter) for _, letter in letters]
        if as_json:
            self.stdout.write(json.dumps(rows, separators=(",", ":")))
            return
        self.stdout.write(f"{len(rows)} dead letter(s)")
        for row in rows:
            self.stdout.write("  ".join(f"{key}={value}" for key, value in row.items()))


def summary(letter: DeadLetter) -> dict[str, Any]:
    """What people see of a dead letter: never the arguments themselves."""
    content = letter.raw if letter.raw is not None else json.dumps([letter.args, letter.kwargs])
    return {
        "id": letter.id,
        "queue": letter.queue,
        "task": letter.task or "-",
        "deliveries": letter.deliveries,
        "at": datetime.fromtimestamp(letter.at, UTC).isoformat(timespec="seconds"),
        "bytes": len(content),
        "replayable": letter.replayable,
        "reason": letter.reason,
    }
