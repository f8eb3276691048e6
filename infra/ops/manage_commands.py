"""Operations that are one `manage.py` command in a one-off task: each adds its subcommand to
`python -m infra.ops` and builds the command's arguments from its own. A new one is a row of
MANAGE_OPERATIONS (cli.py needs no change)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from infra.ops.release_check import file_config

DEAD_LETTER_ACTIONS = ("list", "replay", "drop")


@dataclass(frozen=True)
class ManageOperation:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    manage_arguments: Callable[[argparse.Namespace], list[str]]

    def add_to(self, commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        parser = commands.add_parser(self.name, help=self.help)
        parser.add_argument("stack", help="Pulumi stack name, e.g. prod")
        self.add_arguments(parser)


def schedules_arguments(args: argparse.Namespace) -> list[str]:
    """`manage.py schedules` with the thresholds the stack's alarms use (infra/schedules)."""
    thresholds = file_config(args.stack)
    return [
        "schedules",
        "--stale-periods",
        str(thresholds["scheduleAlarmPeriods"]),
        "--stale-minimum-seconds",
        str(int(str(thresholds["scheduleAlarmMinimumMinutes"])) * 60),
    ]


def _dead_letter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=DEAD_LETTER_ACTIONS)
    parser.add_argument("ids", nargs="*", metavar="ID", help="dead letter ids (replay, drop)")
    parser.add_argument("--all", action="store_true", help="every dead letter (replay, drop)")


def dead_letters_arguments(args: argparse.Namespace) -> list[str]:
    """`manage.py dead_letters` (app/core/management/commands/dead_letters.py)."""
    return ["dead_letters", args.action, *args.ids, *(["--all"] if args.all else [])]


MANAGE_OPERATIONS = (
    ManageOperation(
        "schedules",
        "each Beat schedule entry: last run, next run, last success, state",
        lambda parser: None,
        schedules_arguments,
    ),
    ManageOperation(
        "dead-letters",
        "list, replay or drop the task messages in the dead-letter list",
        _dead_letter_options,
        dead_letters_arguments,
    ),
)
MANAGE_OPERATIONS_BY_NAME = {operation.name: operation for operation in MANAGE_OPERATIONS}
