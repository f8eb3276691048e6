"""Run the migrate task as a one-off ECS task and wait for its verdict.

Plain functions over boto3 ECS and CloudWatch Logs clients, so the Pulumi provider stays thin and
tests can script every AWS answer. Every way a migration can go wrong ends in one `ReleaseError`
whose message says what happened, why ECS says it happened, and what the task printed last.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

# Marks the tasks this module starts, so they stand out in `aws ecs list-tasks --started-by`.
STARTED_BY = "pulumi-release"
DEFAULT_POLL_INTERVAL_SECONDS = 6.0
DEFAULT_LOG_TAIL_LINES = 30
# The awslogs stream prefix of the migrate container: its stream is <prefix>/<container>/<task id>.
LOG_STREAM_PREFIX = "migrate"

# Ends every failure message: the release gates the rollout, so a failure leaves the services alone.
NOTHING_UPDATED = "No service was updated; fix the cause and run `pulumi up` again."

Sleep = Callable[[float], None]
Clock = Callable[[], float]


class ReleaseError(Exception):
    """The migration did not succeed; the message is meant for the person running `pulumi up`."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"Migration failed: {detail}")


@dataclass(frozen=True)
class MigrationTask:
    """Where and how to run the migrate task."""

    cluster: str
    task_definition_arn: str
    container_name: str
    subnet_ids: Sequence[str]
    security_group_ids: Sequence[str]
    assign_public_ip: bool
    log_group_name: str
    timeout_seconds: float


@dataclass(frozen=True)
class MigrationResult:
    task_arn: str
    exit_code: int
    duration_seconds: float


def run_migration(
    ecs: Any,
    logs: Any,
    task: MigrationTask,
    *,
    poll_interval_seconds: float = DEFAULT_POLL_INTERVAL_SECONDS,
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
    log_tail_lines: int = DEFAULT_LOG_TAIL_LINES,
) -> MigrationResult:
    """Start the migrate task, wait until it stops and return its result if it exited with 0.

    Raises ReleaseError if the task cannot start, stops without a zero exit code, or runs longer
    than `task.timeout_seconds` (then it is stopped).
    """
    started_at = clock()
    task_arn = start_task(ecs, task)
    last_seen = wait_until_stopped(
        ecs, task, task_arn, started_at + task.timeout_seconds, poll_interval_seconds, sleep, clock
    )
    if last_seen["lastStatus"] != "STOPPED":
        raise ReleaseError(
            f"the migrate task {task_arn} did not finish within {task.timeout_seconds:g} s "
            f"(last status {last_seen['lastStatus']}); {_stop(ecs, task, task_arn)}.\n{NOTHING_UPDATED}"
            f"{log_tail(logs, task, task_arn, log_tail_lines)}"
        )
    if _container(last_seen, task.container_name).get("exitCode") != 0:
        raise ReleaseError(_failure_message(last_seen, task) + log_tail(logs, task, task_arn, log_tail_lines))
    return MigrationResult(task_arn=task_arn, exit_code=0, duration_seconds=round(clock() - started_at, 1))


def start_task(ecs: Any, task: MigrationTask) -> str:
    """RunTask on Fargate in the service subnets; return the task ARN."""
    try:
        response = ecs.run_task(
            cluster=task.cluster,
            taskDefinition=task.task_definition_arn,
            # Explicit FARGATE: a cluster default strategy may prefer Spot, and an interrupted
            # migration would fail the release for no fault of its own.
            launchType="FARGATE",
            count=1,
            startedBy=STARTED_BY,
            networkConfiguration={
                "awsvpcConfiguration": {
                    "subnets": list(task.subnet_ids),
                    "securityGroups": list(task.security_group_ids),
                    "assignPublicIp": "ENABLED" if task.assign_public_ip else "DISABLED",
                }
            },
        )
    except ClientError as error:
        raise ReleaseError(
            f"could not start the migrate task {task.task_definition_arn} on cluster {task.cluster}: "
            f"{_client_error_text(error)}.\n{NOTHING_UPDATED}"
        ) from error
    failures = response.get("failures") or []
    tasks = response.get("tasks") or []
    if failures or not tasks:
        reasons = "; ".join(_failure_text(failure) for failure in failures) or "ECS started no task"
        raise ReleaseError(
            f"ECS could not start the migrate task {task.task_definition_arn} on cluster "
            f"{task.cluster}: {reasons}.\n{NOTHING_UPDATED}"
        )
    return tasks[0]["taskArn"]


def wait_until_stopped(
    ecs: Any,
    task: MigrationTask,
    task_arn: str,
    deadline: float,
    poll_interval_seconds: float,
    sleep: Sleep,
    clock: Clock,
) -> dict[str, Any]:
    """Poll DescribeTasks until the task is STOPPED or the deadline passes; return what was seen last."""
    while True:
        described = _describe(ecs, task, task_arn)
        remaining = deadline - clock()
        if described["lastStatus"] == "STOPPED" or remaining <= 0:
            return described
        sleep(min(poll_interval_seconds, remaining))


def log_tail(logs: Any, task: MigrationTask, task_arn: str, lines: int) -> str:
    """The last lines the migrate container logged, as an indented block for an error message.

    Never raises: a missing or unreadable log must not hide why the migration failed.
    """
    stream = log_stream_name(task.container_name, task_arn)
    where = f"CloudWatch log group {task.log_group_name}, stream {stream}"
    try:
        response = logs.get_log_events(
            logGroupName=task.log_group_name, logStreamName=stream, limit=lines, startFromHead=False
        )
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            return f"\nNo log output: {where} does not exist (the container never started)."
        return f"\nCould not read {where}: {_client_error_text(error)}."
    messages = [event["message"].rstrip("\n") for event in response.get("events", [])]
    if not messages:
        return f"\nNo log output in {where}."
    body = "\n".join(f"    {message}" for message in messages)
    return f"\nLast {len(messages)} log lines ({where}):\n{body}"


def log_stream_name(container_name: str, task_arn: str) -> str:
    # Task ARNs end in .../task/<cluster name>/<task id>.
    return f"{LOG_STREAM_PREFIX}/{container_name}/{task_arn.rsplit('/', 1)[-1]}"


def _describe(ecs: Any, task: MigrationTask, task_arn: str) -> dict[str, Any]:
    response = ecs.describe_tasks(cluster=task.cluster, tasks=[task_arn])
    described = response.get("tasks") or []
    if not described:
        reasons = "; ".join(_failure_text(failure) for failure in response.get("failures") or [])
        raise ReleaseError(
            f"ECS no longer knows the migrate task {task_arn} ({reasons or 'no details'}); "
            f"check the cluster {task.cluster}.\n{NOTHING_UPDATED}"
        )
    return described[0]


def _stop(ecs: Any, task: MigrationTask, task_arn: str) -> str:
    try:
        ecs.stop_task(
            cluster=task.cluster,
            task=task_arn,
            reason=f"migration exceeded the release timeout of {task.timeout_seconds:g} s",
        )
    except ClientError as error:
        return f"stopping it failed ({_client_error_text(error)}), stop it by hand"
    return "it has been stopped (its open migration transaction rolls back)"


def _container(described: dict[str, Any], container_name: str) -> dict[str, Any]:
    for container in described.get("containers", []):
        if container.get("name") == container_name:
            return container
    return {}


def _failure_message(described: dict[str, Any], task: MigrationTask) -> str:
    task_arn = described["taskArn"]
    containers = [container.get("name") for container in described.get("containers", [])]
    container = _container(described, task.container_name)
    if not container:
        outcome = f"has no container named {task.container_name!r} (it has {containers})"
    elif container.get("exitCode") is None:
        outcome = f"stopped before the {task.container_name!r} container ran to completion (no exit code)"
    else:
        outcome = f"exited with code {container['exitCode']}"
    details = [
        f"stop code: {described.get('stopCode', 'none')}",
        f"stopped reason: {described.get('stoppedReason', 'none')}",
    ]
    if container.get("reason"):
        details.append(f"container reason: {container['reason']}")
    lines = "".join(f"\n  {detail}" for detail in details)
    return f"the migrate task {task_arn} {outcome}.{lines}\n{NOTHING_UPDATED}"


def _failure_text(failure: dict[str, Any]) -> str:
    text = failure.get("reason", "unknown reason").rstrip(".")
    if failure.get("detail"):
        text += f" ({failure['detail']})"
    if failure.get("arn"):
        text += f" for {failure['arn']}"
    return text


def _client_error_text(error: ClientError) -> str:
    details = error.response.get("Error", {})
    return f"{details.get('Code', 'Error')}: {details.get('Message', error)}"
