"""One-off tasks of a deployed stack (`manage`), and the ECS Exec line of a running web task (`shell`)."""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from infra import ecs_tasks
from infra.ecs_tasks import TaskLog, TaskState, task_id
from infra.ops.stack import ONE_OFF_ROLE, DeployedStack, NoRunningTaskError, OpsError, TaskNotStartedError

# Tag on one-off tasks, so `aws ecs list-tasks --started-by one-off-manage` finds them.
ONE_OFF_STARTED_BY = "one-off-manage"
POLL_SECONDS = 3.0
DEFAULT_SHELL_COMMAND = "/bin/sh"


def start_one_off_task(ecs: Any, stack: DeployedStack, command: Sequence[str]) -> str:
    """Starts the one-off task definition with `command` in its container; returns the task ARN."""
    try:
        return ecs_tasks.start_task(
            ecs,
            stack.cluster_name,
            stack.one_off_task_definition_arn,
            stack.network,
            started_by=ONE_OFF_STARTED_BY,
            overrides={"containerOverrides": [{"name": ONE_OFF_ROLE, "command": list(command)}]},
        )
    except ecs_tasks.TaskStartError as error:
        verb = "refused to start" if error.rejected else "did not start"
        raise TaskNotStartedError(f"ECS {verb} the task: {error}") from None


def describe_one_off_task(ecs: Any, stack: DeployedStack, task_arn: str) -> TaskState:
    try:
        return ecs_tasks.describe_task(ecs, stack.cluster_name, task_arn, ONE_OFF_ROLE)
    except ecs_tasks.TaskNotFoundError as error:
        raise OpsError(
            f"task {task_id(task_arn)} is not known to cluster {stack.cluster_name}: {error}"
        ) from None


def one_off_log(logs: Any, stack: DeployedStack, task_arn: str) -> TaskLog:
    stream = ecs_tasks.log_stream_name(ONE_OFF_ROLE, ONE_OFF_ROLE, task_arn)
    return TaskLog(logs, stack.one_off_log_group, stream)


def follow_task(
    ecs: Any,
    log: TaskLog,
    stack: DeployedStack,
    task_arn: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
    poll_seconds: float = POLL_SECONDS,
) -> int:
    """Prints the task's log lines until it stops; returns its container's exit code."""
    last_status = None
    while True:
        task = describe_one_off_task(ecs, stack, task_arn)
        if task.last_status != last_status:
            last_status = task.last_status
            print(f"task {task_id(task_arn)}: {last_status}", file=sys.stderr, flush=True)
        # Read after describing, so the lines written before STOPPED are all printed.
        for line in log.read_new_lines():
            print(line, flush=True)
        if task.stopped:
            return manage_exit_code(task)
        sleep(poll_seconds)


def manage_exit_code(stopped: TaskState) -> int:
    if stopped.exit_code is not None:
        return stopped.exit_code
    raise TaskNotStartedError(
        f"task {task_id(stopped.task_arn)} stopped before manage.py ran (no exit code): "
        f"{'; '.join(stopped.stop_details())}"
    )


def find_shell_task(ecs: Any, stack: DeployedStack) -> str:
    """Returns the ARN of a running web task that accepts ECS Exec."""
    arns = ecs.list_tasks(
        cluster=stack.cluster_name, serviceName=stack.web_service_name, desiredStatus="RUNNING"
    )["taskArns"]
    tasks = ecs.describe_tasks(cluster=stack.cluster_name, tasks=arns)["tasks"] if arns else []
    running = [task for task in tasks if task["lastStatus"] == "RUNNING"]
    if not running:
        starting = f" ({len(tasks)} starting, try again shortly)" if tasks else ""
        raise NoRunningTaskError(
            f"no running task in service {stack.web_service_name} of cluster {stack.cluster_name}{starting}. "
            f"Check the service: aws ecs describe-services --region {stack.region} "
            f"--cluster {stack.cluster_name} --services {stack.web_service_name}"
        )
    exec_enabled = [task for task in running if task.get("enableExecuteCommand")]
    if not exec_enabled:
        raise OpsError(
            f"ECS Exec is off for the running tasks of service {stack.web_service_name}: "
            "enable execute command on the web service and redeploy, or use "
            f"`python -m infra.ops manage {stack.name} -- <command>`"
        )
    return str(exec_enabled[0]["taskArn"])


def execute_command_line(stack: DeployedStack, task_arn: str, command: str) -> str:
    return shlex.join(
        [
            "aws", "ecs", "execute-command",
            "--region", stack.region,
            "--cluster", stack.cluster_name,
            "--task", task_id(task_arn),
            "--container", stack.web_container_name,
            "--interactive",
            "--command", command,
        ]
    )  # fmt: skip
