"""Run a task definition once on Fargate, see how it ended and read what it logged.

The mechanics shared by the release (the migrate task that gates `pulumi up`) and
`python -m infra.ops manage`. Plain functions over boto3 ECS and CloudWatch Logs clients; the
errors carry ECS's own reasons, and each caller words them for its audience.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

STOPPED = "STOPPED"
# How often a one-off task is polled while it runs (the release, a canary).
DEFAULT_POLL_INTERVAL_SECONDS = 6.0
Sleep = Callable[[float], None]
Clock = Callable[[], float]
NO_REASON = "no reason given"


class TaskStartError(Exception):
    """ECS did not start the task; the message is ECS's reason."""

    def __init__(self, reason: str, *, rejected: bool) -> None:
        super().__init__(reason)
        # True when ECS refused the RunTask request itself (parameters, permissions); False when it
        # accepted the request but started no task (e.g. no capacity).
        self.rejected = rejected


class TaskNotFoundError(Exception):
    """DescribeTasks does not know the task; the message is ECS's reason."""


@dataclass(frozen=True)
class FargateNetwork:
    """Where a task's network interface goes: the services' subnets and security groups."""

    subnet_ids: Sequence[str]
    security_group_ids: Sequence[str]
    assign_public_ip: bool

    def network_configuration(self) -> dict[str, Any]:
        return {
            "awsvpcConfiguration": {
                "subnets": list(self.subnet_ids),
                "securityGroups": list(self.security_group_ids),
                "assignPublicIp": "ENABLED" if self.assign_public_ip else "DISABLED",
            }
        }


def start_task(
    ecs: Any,
    cluster: str,
    task_definition_arn: str,
    network: FargateNetwork,
    *,
    started_by: str,
    overrides: Mapping[str, Any] | None = None,
) -> str:
    """RunTask one copy of the task definition; return its task ARN.

    `started_by` tags the task for `aws ecs list-tasks --started-by`; `overrides` is RunTask's own
    (e.g. a container command). Raises TaskStartError with ECS's reason if no task started.
    """
    request: dict[str, Any] = {
        "cluster": cluster,
        "taskDefinition": task_definition_arn,
        # On-demand FARGATE, not the cluster's default strategy, which may prefer Spot: an
        # interrupted one-off task (a migration above all) would fail for no fault of its own.
        "launchType": "FARGATE",
        "count": 1,
        "startedBy": started_by,
        "networkConfiguration": network.network_configuration(),
    }
    if overrides:
        request["overrides"] = dict(overrides)
    try:
        response = ecs.run_task(**request)
    except ClientError as error:
        raise TaskStartError(client_error_text(error), rejected=True) from error
    tasks = response.get("tasks") or []
    failures = response.get("failures") or []
    if failures or not tasks:
        raise TaskStartError(failures_text(failures) or NO_REASON, rejected=False)
    return str(tasks[0]["taskArn"])


@dataclass(frozen=True)
class TaskState:
    """A task as DescribeTasks reports it, seen through the one container whose outcome counts."""

    task_arn: str
    last_status: str
    container_name: str
    container_names: tuple[str, ...]  # every container of the task
    exit_code: int | None  # None until the container has exited, or if it never ran
    stop_code: str | None
    stopped_reason: str | None
    container_reason: str | None

    @classmethod
    def from_description(cls, described: Mapping[str, Any], container_name: str) -> TaskState:
        containers = described.get("containers", [])
        container: Mapping[str, Any] = next((c for c in containers if c.get("name") == container_name), {})
        exit_code = container.get("exitCode")
        return cls(
            task_arn=described["taskArn"],
            last_status=described["lastStatus"],
            container_name=container_name,
            container_names=tuple(c.get("name", "") for c in containers),
            exit_code=None if exit_code is None else int(exit_code),
            stop_code=described.get("stopCode"),
            stopped_reason=described.get("stoppedReason"),
            container_reason=container.get("reason"),
        )

    @property
    def stopped(self) -> bool:
        return self.last_status == STOPPED

    @property
    def has_container(self) -> bool:
        return self.container_name in self.container_names

    def stop_details(self) -> list[str]:
        """Why the task stopped, in ECS's words: stop code, stopped reason, the container's reason."""
        details = [
            f"stop code: {self.stop_code or 'none'}",
            f"stopped reason: {self.stopped_reason or 'none'}",
        ]
        if self.container_reason:
            details.append(f"container reason: {self.container_reason}")
        return details


def describe_task(ecs: Any, cluster: str, task_arn: str, container_name: str) -> TaskState:
    """DescribeTasks for one task; raises TaskNotFoundError with ECS's reason if it is unknown."""
    response = ecs.describe_tasks(cluster=cluster, tasks=[task_arn])
    described = response.get("tasks") or []
    if not described:
        raise TaskNotFoundError(failures_text(response.get("failures") or []) or NO_REASON)
    return TaskState.from_description(described[0], container_name)


def task_id(task_arn: str) -> str:
    # Task ARNs end in .../task/<cluster name>/<task id>.
    return task_arn.rsplit("/", 1)[-1]


def log_stream_name(stream_prefix: str, container_name: str, task_arn: str) -> str:
    """The stream the awslogs driver writes a task's container to: <prefix>/<container>/<task id>."""
    return f"{stream_prefix}/{container_name}/{task_id(task_arn)}"


class TaskLog:
    """One CloudWatch log stream of a task, read forward once or tailed."""

    def __init__(self, logs: Any, group: str, stream: str) -> None:
        self._logs = logs
        self.group = group
        self.stream = stream
        self._next_token: str | None = None

    @property
    def where(self) -> str:
        return f"CloudWatch log group {self.group}, stream {self.stream}"

    def read_new_lines(self) -> list[str]:
        """The lines logged since the last call, each returned once; none before the stream exists."""
        lines: list[str] = []
        while True:
            request = {"logGroupName": self.group, "logStreamName": self.stream, "startFromHead": True}
            if self._next_token:
                request["nextToken"] = self._next_token
            try:
                page = self._logs.get_log_events(**request)
            except ClientError as error:
                if _is_missing(error):
                    return lines  # the stream appears with the container's first line
                raise
            lines.extend(_messages(page))
            # CloudWatch returns the token it was given once the end of the stream is reached.
            if page["nextForwardToken"] == self._next_token:
                return lines
            self._next_token = page["nextForwardToken"]

    def last_lines(self, count: int) -> list[str] | None:
        """The last `count` lines, or None if the stream does not exist (the container never logged)."""
        try:
            page = self._logs.get_log_events(
                logGroupName=self.group, logStreamName=self.stream, limit=count, startFromHead=False
            )
        except ClientError as error:
            if _is_missing(error):
                return None
            raise
        return _messages(page)


def _messages(page: Mapping[str, Any]) -> list[str]:
    return [event["message"].rstrip("\n") for event in page.get("events", [])]


def _is_missing(error: ClientError) -> bool:
    return bool(error.response.get("Error", {}).get("Code") == "ResourceNotFoundException")


def failures_text(failures: Sequence[Mapping[str, Any]]) -> str:
    """RunTask/DescribeTasks `failures` as one line: reason (detail) for arn; ..."""
    return "; ".join(_failure_text(failure) for failure in failures)


def _failure_text(failure: Mapping[str, Any]) -> str:
    text = str(failure.get("reason", "unknown reason")).rstrip(".")
    if failure.get("detail"):
        text += f" ({failure['detail']})"
    if failure.get("arn"):
        text += f" for {failure['arn']}"
    return text


def client_error_text(error: ClientError) -> str:
    """An AWS error as `Code: Message`."""
    details = error.response.get("Error", {})
    return f"{details.get('Code', 'Error')}: {details.get('Message', str(error))}"
