"""The one-off task mechanics shared by the release and `python -m infra.ops`.

The callers' own tests run these through whole scenarios; here are the cases they do not reach:
every way RunTask can refuse, a task ECS does not know, how a task's outcome is read, and a log
longer than one page. ECS and CloudWatch Logs are botocore Stubbers, which also check every
request against the real API models.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from infra.ecs_tasks import (
    FargateNetwork,
    TaskLog,
    TaskNotFoundError,
    TaskStartError,
    TaskState,
    describe_task,
    log_stream_name,
    start_task,
)

REGION = "eu-west-1"
CLUSTER = "djcelery-dev"
TASK_DEFINITION = f"arn:aws:ecs:{REGION}:123456789012:task-definition/djcelery-dev-web:7"
TASK_ID = "9a8b7c6d5e4f40312233445566778899"
TASK_ARN = f"arn:aws:ecs:{REGION}:123456789012:task/{CLUSTER}/{TASK_ID}"
NETWORK = FargateNetwork(subnet_ids=["subnet-a"], security_group_ids=["sg-app"], assign_public_ip=True)
LOG_GROUP = "/ecs/djcelery-dev/web"
LOG_STREAM = f"web/web/{TASK_ID}"


def stubbed(service: str) -> Iterator[tuple[Any, Stubber]]:
    client = botocore.session.get_session().create_client(
        service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def ecs() -> Iterator[tuple[Any, Stubber]]:
    yield from stubbed("ecs")


@pytest.fixture
def logs() -> Iterator[tuple[Any, Stubber]]:
    yield from stubbed("logs")


# --- RunTask ------------------------------------------------------------------------------------
def test_start_task_runs_one_on_demand_fargate_task_in_the_given_network(ecs) -> None:
    client, stubber = ecs
    overrides = {"containerOverrides": [{"name": "web", "command": ["python", "manage.py", "check"]}]}
    stubber.add_response(
        "run_task",
        {"tasks": [{"taskArn": TASK_ARN}], "failures": []},
        {
            "cluster": CLUSTER,
            "taskDefinition": TASK_DEFINITION,
            "launchType": "FARGATE",
            "count": 1,
            "startedBy": "one-off-manage",
            "networkConfiguration": {
                "awsvpcConfiguration": {
                    "subnets": ["subnet-a"],
                    "securityGroups": ["sg-app"],
                    "assignPublicIp": "ENABLED",
                }
            },
            "overrides": overrides,
        },
    )

    task_arn = start_task(
        client, CLUSTER, TASK_DEFINITION, NETWORK, started_by="one-off-manage", overrides=overrides
    )

    assert task_arn == TASK_ARN


def refuse_with_failures(stubber: Stubber) -> None:
    failures = [
        {"arn": f"arn:aws:ecs:{REGION}:123456789012:container-instance/a", "reason": "RESOURCE:MEMORY."},
        {"reason": "AGENT", "detail": "agent disconnected"},
    ]
    stubber.add_response("run_task", {"tasks": [], "failures": failures})


def refuse_silently(stubber: Stubber) -> None:
    stubber.add_response("run_task", {"tasks": [], "failures": []})


def refuse_the_request(stubber: Stubber) -> None:
    stubber.add_client_error(
        "run_task", service_error_code="AccessDeniedException", service_message="not authorized: ecs:RunTask"
    )


@pytest.mark.parametrize(
    ("refuse", "reason", "rejected"),
    [
        (
            refuse_with_failures,
            f"RESOURCE:MEMORY for arn:aws:ecs:{REGION}:123456789012:container-instance/a; "
            "AGENT (agent disconnected)",
            False,
        ),
        (refuse_silently, "no reason given", False),
        (refuse_the_request, "AccessDeniedException: not authorized: ecs:RunTask", True),
    ],
    ids=["failures", "no-task-no-failure", "request-refused"],
)
def test_start_task_raises_with_ecs_s_reason_when_no_task_starts(ecs, refuse, reason, rejected) -> None:
    client, stubber = ecs
    refuse(stubber)

    with pytest.raises(TaskStartError) as error:
        start_task(client, CLUSTER, TASK_DEFINITION, NETWORK, started_by="pulumi-release")

    assert str(error.value) == reason, "every failure ECS gave must be named, in its words"
    assert error.value.rejected is rejected, "a refused request must be told apart from no capacity"


# --- DescribeTasks ------------------------------------------------------------------------------
def test_describe_task_of_a_task_ecs_does_not_know_raises_with_the_reason(ecs) -> None:
    client, stubber = ecs
    stubber.add_response(
        "describe_tasks",
        {"tasks": [], "failures": [{"arn": TASK_ARN, "reason": "MISSING"}]},
        {"cluster": CLUSTER, "tasks": [TASK_ARN]},
    )

    with pytest.raises(TaskNotFoundError, match=f"^MISSING for {TASK_ARN}$"):
        describe_task(client, CLUSTER, TASK_ARN, "web")


def described(**task: Any) -> dict[str, Any]:
    return {"taskArn": TASK_ARN, "lastStatus": "STOPPED", **task}


def test_task_state_reads_the_named_container_s_exit_code() -> None:
    state = TaskState.from_description(
        described(containers=[{"name": "sidecar", "exitCode": 0}, {"name": "web", "exitCode": 3}]), "web"
    )

    assert (state.stopped, state.has_container, state.exit_code) == (True, True, 3)


def test_task_state_of_a_container_that_never_ran_has_no_exit_code_and_says_why() -> None:
    state = TaskState.from_description(
        described(
            stopCode="TaskFailedToStart",
            stoppedReason="CannotPullContainerError: image not found",
            containers=[{"name": "web", "reason": "CannotPullContainerError"}],
        ),
        "web",
    )

    assert state.exit_code is None, "no exit code must not read as 0"
    assert state.stop_details() == [
        "stop code: TaskFailedToStart",
        "stopped reason: CannotPullContainerError: image not found",
        "container reason: CannotPullContainerError",
    ]


def test_task_state_knows_when_the_container_is_not_in_the_task() -> None:
    state = TaskState.from_description(
        described(lastStatus="RUNNING", containers=[{"name": "web"}]), "migrate"
    )

    assert not state.stopped and not state.has_container and state.exit_code is None
    assert state.container_names == ("web",)
    assert state.stop_details() == ["stop code: none", "stopped reason: none"]


# --- CloudWatch Logs ----------------------------------------------------------------------------
def page(messages: list[str], next_token: str) -> dict[str, Any]:
    events = [{"timestamp": 1_700_000_000_000 + n, "message": message} for n, message in enumerate(messages)]
    return {"events": events, "nextForwardToken": next_token, "nextBackwardToken": "b/0"}


def expect_read(stubber: Stubber, answer: dict[str, Any], token: str | None = None) -> None:
    request = {"logGroupName": LOG_GROUP, "logStreamName": LOG_STREAM, "startFromHead": True}
    stubber.add_response("get_log_events", answer, request | ({"nextToken": token} if token else {}))


def test_read_new_lines_pages_to_the_end_and_returns_each_line_once(logs) -> None:
    client, stubber = logs
    stubber.add_client_error(
        "get_log_events", service_error_code="ResourceNotFoundException", service_message="no stream"
    )
    expect_read(stubber, page(["first\n", "second"], "f/1"))
    expect_read(stubber, page(["third"], "f/2"), token="f/1")
    expect_read(stubber, page([], "f/2"), token="f/2")  # the same token back: the end
    expect_read(stubber, page(["fourth"], "f/3"), token="f/2")
    expect_read(stubber, page([], "f/3"), token="f/3")
    log = TaskLog(client, LOG_GROUP, log_stream_name("web", "web", TASK_ARN))

    assert log.read_new_lines() == [], "before the container logs, there is no stream and no line"
    assert log.read_new_lines() == ["first", "second", "third"]
    assert log.read_new_lines() == ["fourth"], "a later read must continue where the last one ended"


def test_last_lines_is_none_without_a_stream_and_other_errors_propagate(logs) -> None:
    client, stubber = logs
    tail_request = {
        "logGroupName": LOG_GROUP,
        "logStreamName": LOG_STREAM,
        "limit": 5,
        "startFromHead": False,
    }
    stubber.add_response("get_log_events", page(["a", "b"], "f/2"), tail_request)
    stubber.add_client_error(
        "get_log_events", service_error_code="ResourceNotFoundException", expected_params=tail_request
    )
    stubber.add_client_error(
        "get_log_events", service_error_code="AccessDeniedException", expected_params=tail_request
    )
    log = TaskLog(client, LOG_GROUP, LOG_STREAM)

    assert log.last_lines(5) == ["a", "b"]
    assert log.last_lines(5) is None
    with pytest.raises(ClientError, match="AccessDeniedException"):
        log.last_lines(5)
