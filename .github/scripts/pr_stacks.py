"""Per-pull-request stacks (`pr-<N>`) in the state backend: does one exist, which ones are stale.

The GitHub workflows call this with the Pulumi CLI logged in (PULUMI_BACKEND_URL) and, for `stale`,
the GitHub CLI authenticated (GH_TOKEN). It prints `key=value` lines for $GITHUB_OUTPUT:

    pr_stacks.py exists pr-42                                    -> exists=true
    pr_stacks.py stale --max-age-days 7 --repository owner/name  -> stacks=["pr-7", "pr-12"]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pulumi import automation as auto

REPO_ROOT = Path(__file__).resolve().parents[2]
PR_STACK_NAME = re.compile(r"^pr-(?P<number>[1-9][0-9]*)$")
REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


def short_name(stack_name: str) -> str:
    """`organization/djcelery/pr-7` (a fully qualified name) and `pr-7` both name stack `pr-7`."""
    return stack_name.rsplit("/", 1)[-1]


def pull_request_number(stack_name: str) -> int | None:
    """The pull request a stack belongs to, or None for any other stack (dev, prod, ...)."""
    match = PR_STACK_NAME.match(short_name(stack_name))
    return int(match["number"]) if match else None


def stack_exists(stacks: Iterable[auto.StackSummary], stack_name: str) -> bool:
    return any(short_name(stack.name) == stack_name for stack in stacks)


def stale_pr_stacks(
    stacks: Iterable[auto.StackSummary],
    open_pull_requests: set[int],
    now: datetime,
    max_age: timedelta,
) -> list[str]:
    """Names of the PR stacks to remove, in pull request order.

    A PR stack is stale when its pull request is no longer open, or when its last update is older
    than `max_age`. A stack whose update is in progress is left alone: that run holds the stack,
    and the next janitor run looks at it again.
    """
    stale: list[tuple[int, str]] = []
    for stack in stacks:
        number = pull_request_number(stack.name)
        if number is None or stack.update_in_progress:
            continue
        closed = number not in open_pull_requests
        idle = stack.last_update is not None and now - _as_utc(stack.last_update) > max_age
        if closed or idle:
            stale.append((number, short_name(stack.name)))
    return [name for _, name in sorted(stale)]


def _as_utc(moment: datetime) -> datetime:
    # `pulumi stack ls --json` reports UTC; the Automation API parses it into a naive datetime.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _run(command: Sequence[str]) -> str:
    try:
        return subprocess.run(command, check=True, capture_output=True, text=True).stdout
    except subprocess.CalledProcessError as error:
        sys.exit(f"{' '.join(command)} failed ({error.returncode}):\n{error.stderr}")


def _open_pull_requests(repository: str) -> set[int]:
    numbers = _run(
        ["gh", "api", "--paginate", f"repos/{repository}/pulls?state=open&per_page=100", "--jq", ".[].number"]
    )
    return {int(line) for line in numbers.split()}


def _backend_stacks() -> list[auto.StackSummary]:
    return auto.LocalWorkspace(work_dir=str(REPO_ROOT)).list_stacks()


def _max_age_days(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of days, at least 1 (got {text!r})")
    return int(text)


def _repository(text: str) -> str:
    if not REPOSITORY.match(text):
        raise argparse.ArgumentTypeError(f"must look like owner/name (got {text!r})")
    return text


def _pr_stack_name(text: str) -> str:
    if not PR_STACK_NAME.match(text):
        raise argparse.ArgumentTypeError(f"must be a per-pull-request stack name like pr-42 (got {text!r})")
    return text


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    exists = commands.add_parser("exists", help="whether a PR stack exists in the backend")
    exists.add_argument("stack", type=_pr_stack_name)
    stale = commands.add_parser("stale", help="PR stacks whose pull request is closed or that are idle")
    stale.add_argument("--max-age-days", type=_max_age_days, required=True)
    stale.add_argument("--repository", type=_repository, required=True)
    args = parser.parse_args(argv)

    if args.command == "exists":
        print(f"exists={str(stack_exists(_backend_stacks(), args.stack)).lower()}")
    else:
        names = stale_pr_stacks(
            _backend_stacks(),
            _open_pull_requests(args.repository),
            now=datetime.now(UTC),
            max_age=timedelta(days=args.max_age_days),
        )
        print(f"stacks={json.dumps(names)}")


if __name__ == "__main__":
    main()
