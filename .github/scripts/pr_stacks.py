"""Per-pull-request stacks (`pr-<N>`): which kind a pull request gets, does one exist in the state
backend, which ones are stale, and the pull request comment that announces one.

The GitHub workflows call this with the GitHub CLI authenticated (GH_TOKEN) for `plan` and `stale`,
and with the Pulumi CLI logged in (PULUMI_BACKEND_URL) for `exists` and `stale`. It prints
`key=value` lines for $GITHUB_OUTPUT (`comment` prints the comment's Markdown):

    pr_stacks.py plan --repository owner/name --pull-request 42 --labels '["full-stack"]'
                      --preview-base acme/djcelery/preview-base --beat-enabled true
                                                                 -> kind=full, policy-tier=ephemeral,
                                                                    reason=..., config-map={...}
    pr_stacks.py exists pr-42                                    -> exists=true
    pr_stacks.py stale --max-age-days 7 --repository owner/name  -> stacks=["pr-7", "pr-12"]
    pr_stacks.py comment --stack pr-42 --kind preview --url https://... --seconds 212 --reason ...

A pull request gets a thin preview on the shared base (`previewOf`, docs/delivery.md#previews) unless
it changes the infrastructure itself (infra/, the program's entry point, a Pulumi*.yaml file) or
carries the `full-stack` label: then it gets the full-copy ephemeral stack, which proves what a
preview cannot (a new network, database or broker setting). Without a configured base, every pull
request gets the full copy.
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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pulumi import automation as auto

REPO_ROOT = Path(__file__).resolve().parents[2]
PR_STACK_NAME = re.compile(r"^pr-(?P<number>[1-9][0-9]*)$")
REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
# A fully qualified stack name, <org>/<project>/<stack>, as `previewOf` takes it.
QUALIFIED_STACK = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
FULL_STACK_LABEL = "full-stack"
# Paths whose change needs the full copy: the Pulumi program, its entry point and its stack files.
INFRASTRUCTURE_PATH = re.compile(r"^(infra/|__main__\.py$|Pulumi[^/]*\.yaml$)")
KINDS = ("preview", "full")
# The policy pack configuration (infra/policy/<tier>.json) each kind is deployed with.
POLICY_TIERS = {"preview": "preview", "full": "ephemeral"}
COMMENT_MARKER = "<!-- pr-stack -->"


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


def stack_kind(changed_files: Iterable[str], labels: Iterable[str], preview_base: str) -> tuple[str, str]:
    """`preview` or `full`, and why, in words for the pull request comment."""
    if not preview_base:
        return "full", "no preview base is configured (repository variable PREVIEW_BASE_STACK)"
    if FULL_STACK_LABEL in set(labels):
        return "full", f"the pull request has the `{FULL_STACK_LABEL}` label"
    infrastructure = sorted(path for path in changed_files if INFRASTRUCTURE_PATH.match(path))
    if infrastructure:
        shown = ", ".join(f"`{path}`" for path in infrastructure[:3])
        more = f" and {len(infrastructure) - 3} more" if len(infrastructure) > 3 else ""
        return "full", f"it changes the infrastructure: {shown}{more}"
    return "preview", f"no infrastructure change and no `{FULL_STACK_LABEL}` label"


def stack_config(kind: str, preview_base: str, beat_enabled: bool) -> dict[str, dict[str, object]]:
    """The `config-map` of pulumi/actions: a PR stack has no stack file, this is its configuration
    (values as `pulumi config set` takes them: text, JSON for lists)."""
    config: dict[str, dict[str, object]] = {
        "djcelery:ephemeral": {"value": "true", "secret": False},
        "djcelery:beatEnabled": {"value": str(beat_enabled).lower(), "secret": False},
    }
    if kind == "preview":
        # What runs in a preview is the program's (one task: infra/preview/app_service.py).
        config["djcelery:previewOf"] = {"value": preview_base, "secret": False}
    return config


def comment(stack: str, kind: str, url: str, seconds: int, reason: str) -> str:
    """The pull request comment (found again by its marker and updated on every push)."""
    what = "a thin preview on the shared base" if kind == "preview" else "a full-copy ephemeral stack"
    minutes, rest = divmod(seconds, 60)
    return "\n".join(
        [
            COMMENT_MARKER,
            f"**{stack}** is {what}: {url or '(no URL: see the run)'}",
            "",
            f"`pulumi up` took {minutes} min {rest:02d} s. Why this kind: {reason}.",
        ]
    )


def _as_utc(moment: datetime) -> datetime:
    # `pulumi stack ls --json` reports UTC; the Automation API parses it into a naive datetime.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _run(command: Sequence[str]) -> str:
    try:
        return subprocess.run(command, check=True, capture_output=True, text=True).stdout
    except subprocess.CalledProcessError as error:
        sys.exit(f"{' '.join(command)} failed ({error.returncode}):\n{error.stderr}")


def open_pull_requests(repository: str) -> set[int]:
    numbers = _run(
        ["gh", "api", "--paginate", f"repos/{repository}/pulls?state=open&per_page=100", "--jq", ".[].number"]
    )
    return {int(line) for line in numbers.split()}


def _changed_files(repository: str, number: int) -> list[str]:
    path = f"repos/{repository}/pulls/{number}/files?per_page=100"
    return _run(["gh", "api", "--paginate", path, "--jq", ".[].filename"]).splitlines()


def _backend_stacks() -> list[auto.StackSummary]:
    # Imported here: `plan` and `comment` run on the runner's own Python, before any set-up.
    from pulumi import automation as auto

    return auto.LocalWorkspace(work_dir=str(REPO_ROOT)).list_stacks()


def _max_age_days(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of days, at least 1 (got {text!r})")
    return int(text)


def repository_argument(text: str) -> str:
    if not REPOSITORY.match(text):
        raise argparse.ArgumentTypeError(f"must look like owner/name (got {text!r})")
    return text


def _qualified_stack_or_empty(text: str) -> str:
    if text and not QUALIFIED_STACK.match(text):
        raise argparse.ArgumentTypeError(f"must look like <org>/<project>/<stack> or be empty (got {text!r})")
    return text


def _boolean(text: str) -> bool:
    if text not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"must be true or false (got {text!r})")
    return text == "true"


def _labels(text: str) -> list[str]:
    try:
        labels = json.loads(text)
    except json.JSONDecodeError:
        labels = None
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise argparse.ArgumentTypeError(f"must be a JSON list of label names (got {text!r})")
    return labels


def _pr_stack_name(text: str) -> str:
    if not PR_STACK_NAME.match(text):
        raise argparse.ArgumentTypeError(f"must be a per-pull-request stack name like pr-42 (got {text!r})")
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser("plan", help="the kind of stack a pull request gets, and its configuration")
    plan.add_argument("--repository", type=repository_argument, required=True)
    plan.add_argument("--pull-request", type=int, required=True)
    plan.add_argument("--labels", type=_labels, required=True, help="JSON list of the pull request's labels")
    plan.add_argument("--preview-base", type=_qualified_stack_or_empty, required=True)
    plan.add_argument("--beat-enabled", type=_boolean, required=True)
    exists = commands.add_parser("exists", help="whether a PR stack exists in the backend")
    exists.add_argument("stack", type=_pr_stack_name)
    stale = commands.add_parser("stale", help="PR stacks whose pull request is closed or that are idle")
    stale.add_argument("--max-age-days", type=_max_age_days, required=True)
    stale.add_argument("--repository", type=repository_argument, required=True)
    announce = commands.add_parser("comment", help="the pull request comment announcing the stack")
    announce.add_argument("--stack", type=_pr_stack_name, required=True)
    announce.add_argument("--kind", choices=KINDS, required=True)
    announce.add_argument("--url", default="")
    announce.add_argument("--seconds", type=int, required=True)
    announce.add_argument("--reason", required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "plan":
        changed = _changed_files(args.repository, args.pull_request)
        kind, reason = stack_kind(changed, args.labels, args.preview_base)
        print(f"kind={kind}")
        print(f"policy-tier={POLICY_TIERS[kind]}")
        print(f"reason={reason}")
        print(f"config-map={json.dumps(stack_config(kind, args.preview_base, args.beat_enabled))}")
    elif args.command == "exists":
        print(f"exists={str(stack_exists(_backend_stacks(), args.stack)).lower()}")
    elif args.command == "stale":
        names = stale_pr_stacks(
            _backend_stacks(),
            open_pull_requests(args.repository),
            now=datetime.now(UTC),
            max_age=timedelta(days=args.max_age_days),
        )
        print(f"stacks={json.dumps(names)}")
    else:
        print(comment(args.stack, args.kind, args.url, args.seconds, args.reason))


if __name__ == "__main__":
    main()
