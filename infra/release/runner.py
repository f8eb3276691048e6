"""Run the migrate task as a one-off ECS task and wait for its verdict.

Plain functions over boto3 ECS and CloudWatch Logs clients, so the Pulumi provider stays thin and
tests can script every AWS answer. Every way a migration can go wrong ends in one `ReleaseError`
whose message says what happened, why ECS says it happened, and what the task printed last.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from infra import app_contract, ecs_tasks
from infra.ecs_tasks import (
    DEFAULT_POLL_INTERVAL_SECONDS,
    Clock,
    FargateNetwork,
    Sleep,
    TaskLog,
    TaskState,
    client_error_text,
)
from infra.release.compatibility import ReleaseState, ReleaseStateError

# Marks the tasks this module starts, so they stand out in `aws ecs list-tasks --started-by`.
STARTED_BY = "pulumi-release"
DEFAULT_LOG_TAIL_LINES = 30
# The awslogs stream prefix of the migrate container: its stream is <prefix>/<container>/<task id>.
LOG_STREAM_PREFIX = app_contract.Role.MIGRATE.value

# Ends every failure message: the release gates the rollout, so a failure leaves the services alone.
NOTHING_UPDATED = "No service was updated; fix the cause and run `pulumi up` again."


class ReleaseError(Exception):
    """The migration did not succeed; the message is meant for the person running `pulumi up`."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"Migration failed: {detail}")


class ReleaseCheckError(Exception):
    """The new image could not report its release state; nothing was migrated."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"Release check failed: {detail}")


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

    @property
    def network(self) -> FargateNetwork:
        return FargateNetwork(self.subnet_ids, self.security_group_ids, self.assign_public_ip)


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
    if not last_seen.stopped:
        raise ReleaseError(
            f"the migrate task {task_arn} did not finish within {task.timeout_seconds:g} s "
            f"(last status {last_seen.last_status}); {_stop(ecs, task, task_arn)}.\n{NOTHING_UPDATED}"
            f"{log_tail(logs, task, task_arn, log_tail_lines)}"
        )
    if last_seen.exit_code != 0:
        raise ReleaseError(_failure_message(last_seen) + log_tail(logs, task, task_arn, log_tail_lines))
    return MigrationResult(task_arn=task_arn, exit_code=0, duration_seconds=round(clock() - started_at, 1))


# What Django's argument parser prints for an image whose release_state predates the flag.
UNKNOWN_FLAG = "unrecognized arguments: --migrate-if-empty"


@dataclass(frozen=True)
class CheckedRelease:
    state: ReleaseState  # what the new image reported
    # The same task migrated an empty database (run_release_check's migrate_if_empty); None: the
    # migrations are still to run.
    migrated: MigrationResult | None = None


def run_release_check(
    ecs: Any,
    logs: Any,
    task: MigrationTask,
    *,
    migrate_if_empty: bool = False,
    poll_interval_seconds: float = DEFAULT_POLL_INTERVAL_SECONDS,
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
) -> CheckedRelease:
    """Runs `manage.py release_state --applied --live` in the new image (the migrate task definition,
    its command replaced) against the live database and broker, and returns what it reported.

    With `migrate_if_empty` the task also migrates a database that has no migration applied, right
    after its report (release_state --migrate-if-empty): nothing runs on such a database yet, so
    there is nothing for the gate to protect, and the release takes one task instead of two.

    Raises ReleaseCheckError if the task does not start, fails, overruns or reports nothing usable,
    and ReleaseError if it reported an empty database and then failed to migrate it.
    """
    flags = ("--applied", "--live", *(("--migrate-if-empty",) if migrate_if_empty else ()))
    command = app_contract.release_state_command(*flags)
    started_at = clock()
    try:
        task_arn = start_task(ecs, task, command)
    except ReleaseError as error:
        raise ReleaseCheckError(str(error).removeprefix("Migration failed: ")) from error
    deadline = clock() + task.timeout_seconds
    seen = wait_until_stopped(ecs, task, task_arn, deadline, poll_interval_seconds, sleep, clock)
    tail = log_tail(logs, task, task_arn, DEFAULT_LOG_TAIL_LINES)
    if not seen.stopped:
        raise ReleaseCheckError(
            f"the check task {task_arn} did not finish; {_stop(ecs, task, task_arn)}.{tail}"
        )
    state = _reported_state(logs, task, task_arn)
    migrated_here = migrate_if_empty and isinstance(state, ReleaseState) and state.applied == ()
    if seen.exit_code != 0:
        if migrated_here:
            raise ReleaseError(_failure_message(seen) + tail)
        if migrate_if_empty and UNKNOWN_FLAG in tail:
            # An image whose release_state predates the flag (a promoted older one): checked as
            # before, then migrated by the migrate task.
            return run_release_check(
                ecs, logs, task, poll_interval_seconds=poll_interval_seconds, sleep=sleep, clock=clock
            )
        raise ReleaseCheckError(
            f"`{' '.join(command)}` in task {task_arn} ended with exit code {seen.exit_code} "
            f"({'; '.join(seen.stop_details())}). An image without that command (one built before "
            f"release checks existed) cannot be checked: release it with releaseForce.{tail}"
        )
    if not isinstance(state, ReleaseState):
        raise ReleaseCheckError(f"the check task {task_arn} reported no usable state: {state}.{tail}")
    if not migrated_here:
        return CheckedRelease(state)
    duration = round(clock() - started_at, 1)
    return CheckedRelease(state, MigrationResult(task_arn=task_arn, exit_code=0, duration_seconds=duration))


def _reported_state(logs: Any, task: MigrationTask, task_arn: str) -> ReleaseState | str:
    """The state the check task printed, or why there is none."""
    stream = ecs_tasks.log_stream_name(LOG_STREAM_PREFIX, task.container_name, task_arn)
    try:
        return ReleaseState.from_lines(TaskLog(logs, task.log_group_name, stream).read_new_lines())
    except (ReleaseStateError, ValueError, ClientError) as error:
        return str(error)


def start_task(
    ecs: Any,
    task: MigrationTask,
    command: Sequence[str] | None = None,
    environment: Mapping[str, str] | None = None,
) -> str:
    """RunTask on Fargate in the service subnets, optionally with another command and more plain
    variables (botocore ECS ContainerOverride: name, command, environment as KeyValuePair name and
    value); return the task ARN."""
    override: dict[str, Any] = {"name": task.container_name}
    if command:
        override["command"] = list(command)
    if environment:
        override["environment"] = [{"name": name, "value": value} for name, value in environment.items()]
    overrides = {"containerOverrides": [override]} if len(override) > 1 else None
    try:
        return ecs_tasks.start_task(
            ecs,
            task.cluster,
            task.task_definition_arn,
            task.network,
            started_by=STARTED_BY,
            overrides=overrides,
        )
    except ecs_tasks.TaskStartError as error:
        raise ReleaseError(
            f"ECS could not start the migrate task {task.task_definition_arn} on cluster "
            f"{task.cluster}: {error}.\n{NOTHING_UPDATED}"
        ) from error


def wait_until_stopped(
    ecs: Any,
    task: MigrationTask,
    task_arn: str,
    deadline: float,
    poll_interval_seconds: float,
    sleep: Sleep,
    clock: Clock,
) -> TaskState:
    """Poll DescribeTasks until the task is STOPPED or the deadline passes; return what was seen last."""
    while True:
        try:
            described = ecs_tasks.describe_task(ecs, task.cluster, task_arn, task.container_name)
        except ecs_tasks.TaskNotFoundError as error:
            raise ReleaseError(
                f"ECS no longer knows the migrate task {task_arn} ({error}); "
                f"check the cluster {task.cluster}.\n{NOTHING_UPDATED}"
            ) from error
        remaining = deadline - clock()
        if described.stopped or remaining <= 0:
            return described
        sleep(min(poll_interval_seconds, remaining))


def log_tail(logs: Any, task: MigrationTask, task_arn: str, lines: int) -> str:
    """The last lines the migrate container logged, as an indented block for an error message.

    Never raises: a missing or unreadable log must not hide why the migration failed.
    """
    stream = ecs_tasks.log_stream_name(LOG_STREAM_PREFIX, task.container_name, task_arn)
    log = TaskLog(logs, task.log_group_name, stream)
    try:
        messages = log.last_lines(lines)
    except ClientError as error:
        return f"\nCould not read {log.where}: {client_error_text(error)}."
    if messages is None:
        return f"\nNo log output: {log.where} does not exist (the container never started)."
    if not messages:
        return f"\nNo log output in {log.where}."
    body = "\n".join(f"    {message}" for message in messages)
    return f"\nLast {len(messages)} log lines ({log.where}):\n{body}"


def _stop(ecs: Any, task: MigrationTask, task_arn: str) -> str:
    try:
        ecs.stop_task(
            cluster=task.cluster,
            task=task_arn,
            reason=f"migration exceeded the release timeout of {task.timeout_seconds:g} s",
        )
    except ClientError as error:
        return f"stopping it failed ({client_error_text(error)}), stop it by hand"
    return "it has been stopped (its open migration transaction rolls back)"


def _failure_message(stopped: TaskState) -> str:
    name = stopped.container_name
    if not stopped.has_container:
        outcome = f"has no container named {name!r} (it has {list(stopped.container_names)})"
    elif stopped.exit_code is None:
        outcome = f"stopped before the {name!r} container ran to completion (no exit code)"
    else:
        outcome = f"exited with code {stopped.exit_code}"
    lines = "".join(f"\n  {detail}" for detail in stopped.stop_details())
    return f"the migrate task {stopped.task_arn} {outcome}.{lines}\n{NOTHING_UPDATED}"
