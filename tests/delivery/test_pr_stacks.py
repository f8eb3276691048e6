"""The janitor's choice of stale per-pull-request stacks, and the script's input checks."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta

import pytest
from pulumi.automation import StackSummary

from tests.delivery.workflows import GITHUB_DIR

_spec = importlib.util.spec_from_file_location("pr_stacks", GITHUB_DIR / "scripts" / "pr_stacks.py")
assert _spec and _spec.loader
pr_stacks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pr_stacks)

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def stack(name: str, updated_days_ago: float | None = 1, in_progress: bool = False) -> StackSummary:
    # Naive UTC, the way the Automation API parses `pulumi stack ls --json`.
    last_update = None
    if updated_days_ago is not None:
        last_update = (NOW - timedelta(days=updated_days_ago)).replace(tzinfo=None)
    return StackSummary(name=name, current=False, update_in_progress=in_progress, last_update=last_update)


def stale(stacks: list[StackSummary], open_pull_requests: set[int]) -> list[str]:
    return pr_stacks.stale_pr_stacks(stacks, open_pull_requests, now=NOW, max_age=WEEK)


def test_stacks_of_closed_pull_requests_are_stale() -> None:
    stacks = [stack("pr-7"), stack("pr-8"), stack("pr-9")]
    assert stale(stacks, {8}) == ["pr-7", "pr-9"]


def test_open_pull_requests_keep_their_stack_until_it_is_idle_too_long() -> None:
    stacks = [stack("pr-1", updated_days_ago=6.9), stack("pr-2", updated_days_ago=7.1)]
    assert stale(stacks, {1, 2}) == ["pr-2"]


def test_shared_and_foreign_stacks_are_never_touched() -> None:
    stacks = [stack(name, updated_days_ago=400) for name in ("dev", "prod", "pr-", "pr-01", "pr-x", "mypr-3")]
    assert stale(stacks, set()) == []


def test_a_stack_being_updated_is_left_for_the_next_run() -> None:
    stacks = [stack("pr-4", updated_days_ago=30, in_progress=True)]
    assert stale(stacks, set()) == []


def test_a_never_updated_stack_stays_while_its_pull_request_is_open() -> None:
    stacks = [stack("pr-5", updated_days_ago=None), stack("pr-6", updated_days_ago=None)]
    assert stale(stacks, {5}) == ["pr-6"]


def test_fully_qualified_names_and_pull_request_order() -> None:
    stacks = [stack("organization/djcelery/pr-12"), stack("organization/djcelery/pr-3")]
    assert stale(stacks, set()) == ["pr-3", "pr-12"]
    assert pr_stacks.stack_exists(stacks, "pr-12")
    assert not pr_stacks.stack_exists(stacks, "pr-1")


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["stale", "--max-age-days", "0", "--repository", "acme/app"], "at least 1"),
        (["stale", "--max-age-days", "seven", "--repository", "acme/app"], "whole number of days"),
        (["stale", "--max-age-days", "7", "--repository", "acme"], "owner/name"),
        (["exists", "dev"], "like pr-42"),
    ],
)
def test_bad_arguments_are_refused_with_a_clear_message(argv, complaint, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        pr_stacks.main(argv)
    assert exit_info.value.code == 2
    assert complaint in capsys.readouterr().err
