"""`python -m infra.ops dead-letters`: the app's `manage.py dead_letters` in a one-off task.

ECS is the suite's botocore Stubber (tests/infra/ops/conftest.py): it checks each request against
botocore's ECS model (RunTaskRequest, its `overrides.containerOverrides[].command`:
https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContainerOverride.html). moto's ECS
cannot stand in here: its RunTask fails on the awsvpc network configuration every Fargate task has
(`NetworkInterface` has no `private_dns_name` in moto 5), and its tasks never stop.
"""

from __future__ import annotations

import pytest

from infra.ops import cli as ops
from tests.infra.ops.test_ops import Scenario, expect_describe, expect_run_task, run_cli, task, write_log


@pytest.mark.parametrize(
    ("arguments", "command"),
    [
        (["list"], ["dead_letters", "list"]),
        (["replay", "id-1", "id-2"], ["dead_letters", "replay", "id-1", "id-2"]),
        (["drop", "--all"], ["dead_letters", "drop", "--all"]),
    ],
)
def test_dead_letters_runs_the_apps_command_and_exits_with_its_code(
    stack, ecs, logs, capsys, arguments, command
) -> None:
    client, stubber = ecs
    expect_run_task(stubber, ["python", "manage.py", *command])
    expect_describe(stubber, task("STOPPED", exit_code=1, stopCode="EssentialContainerExited"))
    write_log(logs, "CommandError: no dead letter id-2")

    exit_code = run_cli(["dead-letters", "dev", *arguments], stack, client, logs, sleep=Scenario().sleep)

    assert exit_code == 1, "the exit code of manage.py in the task"
    assert "no dead letter id-2" in capsys.readouterr().out


def test_dead_letters_refuses_an_unknown_action_before_starting_a_task(stack, ecs, capsys) -> None:
    client, _stubber = ecs  # nothing stubbed: any ECS call fails the test
    with pytest.raises(SystemExit) as exited:
        run_cli(["dead-letters", "dev", "purge"], stack, client)
    assert exited.value.code == ops.EXIT_USAGE
    assert "invalid choice: 'purge'" in capsys.readouterr().err
