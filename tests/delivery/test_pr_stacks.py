"""The janitor's choice of stale per-pull-request stacks, and the script's input checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pulumi.automation import StackSummary

from testkit.workflow_scripts import workflow_script

pr_stacks = workflow_script("pr_stacks")

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


BASE = "acme/djcelery/preview-base"


@pytest.mark.parametrize(
    "changed",
    [
        ["app/signups/views.py", "docs/app.md", "infrastructure.md"],
        ["tests/infra/test_stack.py", "app/infra/notes.md"],  # tests and look-alikes are no infrastructure
        [],
    ],
)
def test_an_application_change_gets_a_thin_preview_on_the_base(changed) -> None:
    kind, reason = pr_stacks.stack_kind(changed, ["documentation"], BASE)

    assert kind == "preview", reason
    config = pr_stacks.stack_config(kind, BASE, beat_enabled=False)

    values = {key: entry["value"] for key, entry in config.items()}
    # Values as `pulumi config set` takes them; what runs in a preview is the program's choice.
    assert values == {
        "djcelery:ephemeral": "true",
        "djcelery:beatEnabled": "false",
        "djcelery:previewOf": BASE,
    }
    assert not any(entry["secret"] for entry in config.values())


@pytest.mark.parametrize(
    ("changed", "labels", "base", "why"),
    [
        (["app/x.py", "infra/stack.py"], [], BASE, "changes the infrastructure: `infra/stack.py`"),
        (["Pulumi.yaml"], [], BASE, "`Pulumi.yaml`"),
        (["Pulumi.preview-base.yaml"], [], BASE, "`Pulumi.preview-base.yaml`"),
        (["__main__.py"], [], BASE, "`__main__.py`"),
        ([f"infra/m{n}.py" for n in range(5)], [], BASE, "`infra/m2.py` and 2 more"),
        (["app/x.py"], ["full-stack"], BASE, "the `full-stack` label"),
        (["app/x.py"], [], "", "no preview base is configured"),
    ],
)
def test_an_infrastructure_change_the_label_or_no_base_gets_the_full_copy(changed, labels, base, why) -> None:
    kind, reason = pr_stacks.stack_kind(changed, labels, base)

    assert kind == "full"
    assert why in reason
    assert "djcelery:previewOf" not in pr_stacks.stack_config(kind, base, beat_enabled=True)


def test_the_comment_gives_the_url_the_kind_and_the_time_of_the_update(capsys) -> None:
    pr_stacks.main(
        ["comment", "--stack", "pr-42", "--kind", "preview", "--url", "https://pr-42.preview.example.com",
         "--seconds", "212", "--reason", "no infrastructure change"]
    )
    lines = capsys.readouterr().out.splitlines()

    assert lines[0] == pr_stacks.COMMENT_MARKER, "the workflow finds its comment again by the marker"
    assert lines[1] == "**pr-42** is a thin preview on the shared base: https://pr-42.preview.example.com"
    assert "`pulumi up` took 3 min 32 s" in lines[3]


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["stale", "--max-age-days", "0", "--repository", "acme/app"], "at least 1"),
        (["stale", "--max-age-days", "seven", "--repository", "acme/app"], "whole number of days"),
        (["stale", "--max-age-days", "7", "--repository", "acme"], "owner/name"),
        (["exists", "dev"], "like pr-42"),
        (["plan", "--repository", "acme/app", "--pull-request", "7", "--labels", "full-stack",
          "--preview-base", BASE, "--beat-enabled", "true"], "JSON list of label names"),
        (["plan", "--repository", "acme/app", "--pull-request", "7", "--labels", "[]",
          "--preview-base", "preview-base", "--beat-enabled", "true"], "<org>/<project>/<stack>"),
        (["plan", "--repository", "acme/app", "--pull-request", "7", "--labels", "[]",
          "--preview-base", BASE, "--beat-enabled", "yes"], "true or false"),
    ],
)
def test_bad_arguments_are_refused_with_a_clear_message(argv, complaint, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        pr_stacks.main(argv)
    assert exit_info.value.code == 2
    assert complaint in capsys.readouterr().err
