"""The AWS calls of a worker canary, answered by local processes: the boundary the canary provider
talks to, as the fake ECS agent is the workers' (testkit/ecs_agent.py).

- ECS: DescribeServices says the pool's service runs the old task definition; RunTask starts one
  container of the new one (the pool's worker container, with the overrides that make it the new
  version); DescribeTasks reports it RUNNING or STOPPED with its exit code; StopTask is what ECS
  does: SIGTERM, SIGKILL at the stop timeout.
- CloudWatch Logs: GetLogEvents pages through the container's output as its awslogs stream.
- CloudWatch: GetMetricStatistics gives the largest backlog of the pool's queues (waiting plus in
  flight, what the queue-metrics publisher writes as PoolBacklog) seen while the canary existed.

Every request is checked against the botocore model of its operation, as the Stubber-based tests
do, so the provider cannot call these with arguments AWS would refuse.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import botocore.session
from botocore.validate import ParamValidator

from infra.workers.canary_provider import CanaryClients
from tests.e2e.stack import AppStack, Container, StopResult
from tests.e2e.task_definitions import ContainerSpec

TASK_ID = "0c4a4a2f3e6d4b1c9a8b7c6d5e4f3a2b"
SESSION = botocore.session.get_session()


def checked(service: str, operation: str, params: Mapping[str, Any]) -> None:
    model = SESSION.get_service_model(service).operation_model(operation)
    report = ParamValidator().validate(dict(params), model.input_shape)
    assert not report.has_errors(), report.generate_report()


@dataclass
class LocalCanary:
    """One canary of `spec` (the pool's worker container) as the new version (`overrides`)."""

    stack: AppStack
    spec: ContainerSpec
    overrides: Mapping[str, str]
    running_task_definition: str  # what DescribeServices says the pool's service runs
    stop_timeout: float
    container: Container | None = None
    stop: StopResult | None = None
    stop_requested_at: float | None = None
    largest_backlog: int = 0
    _sampling: threading.Event = field(default_factory=threading.Event)

    @property
    def task_arn(self) -> str:
        return f"arn:aws:ecs:us-east-1:123456789012:task/canary/{TASK_ID}"

    def clients(self, _region: str) -> CanaryClients:
        return CanaryClients(ecs=_Ecs(self), logs=_Logs(self), cloudwatch=_CloudWatch(self))

    def start(self) -> None:
        self.container = self.stack.start(self.spec, label="canary", **self.overrides)
        threading.Thread(target=self._sample_backlog, daemon=True).start()

    def request_stop(self) -> None:
        """ECS stops a task in the background: SIGTERM now, SIGKILL at the stop timeout."""
        assert self.container is not None
        self.container.terminate()
        self.stop_requested_at = self.container.terminated_at

        def wait() -> None:
            assert self.container is not None
            self.stop = self.container.wait_stopped(self.stop_timeout)
            self._sampling.set()

        threading.Thread(target=wait, daemon=True).start()

    def _sample_backlog(self) -> None:
        client = self.stack.redis.client()
        while not self._sampling.wait(0.2):
            queues = self.spec.option("--queues").split(",")
            backlog = sum(client.llen(queue) for queue in queues) + client.hlen("unacked")
            self.largest_backlog = max(self.largest_backlog, backlog)


class _Ecs:
    def __init__(self, canary: LocalCanary) -> None:
        self.canary = canary

    def describe_services(self, **params: Any) -> dict[str, Any]:
        checked("ecs", "DescribeServices", params)
        service = {"serviceName": params["services"][0], "status": "ACTIVE"}
        return {"services": [{**service, "taskDefinition": self.canary.running_task_definition}]}

    def run_task(self, **params: Any) -> dict[str, Any]:
        checked("ecs", "RunTask", params)
        self.canary.start()
        return {"tasks": [{"taskArn": self.canary.task_arn, "lastStatus": "PROVISIONING"}], "failures": []}

    def describe_tasks(self, **params: Any) -> dict[str, Any]:
        checked("ecs", "DescribeTasks", params)
        container = self.canary.container
        assert container is not None and params["tasks"] == [self.canary.task_arn]
        if container.is_running():
            return {"tasks": [{"taskArn": self.canary.task_arn, "lastStatus": "RUNNING",
                               "containers": [{"name": "worker"}]}]}  # fmt: skip
        stopped_by = "UserInitiated" if container.terminated_at else "EssentialContainerExited"
        exited = {"name": "worker", "exitCode": container.popen.returncode}
        return {"tasks": [{"taskArn": self.canary.task_arn, "lastStatus": "STOPPED", "stopCode": stopped_by,
                           "containers": [exited]}]}  # fmt: skip

    def stop_task(self, **params: Any) -> dict[str, Any]:
        checked("ecs", "StopTask", params)
        self.canary.request_stop()
        return {"task": {"taskArn": self.canary.task_arn, "lastStatus": "RUNNING"}}


class _Logs:
    def __init__(self, canary: LocalCanary) -> None:
        self.canary = canary

    def get_log_events(self, **params: Any) -> dict[str, Any]:
        checked("logs", "GetLogEvents", params)
        assert params["logStreamName"] == f"worker/worker/{TASK_ID}", params
        container = self.canary.container
        lines = container.output().splitlines() if container else []
        start = int(params.get("nextToken", "f/0").split("/")[1])
        now = int(datetime.now(UTC).timestamp() * 1000)
        events = [{"timestamp": now, "message": line} for line in lines[start:]]
        return {"events": events, "nextForwardToken": f"f/{len(lines)}", "nextBackwardToken": "b/0"}


class _CloudWatch:
    def __init__(self, canary: LocalCanary) -> None:
        self.canary = canary

    def get_metric_statistics(self, **params: Any) -> dict[str, Any]:
        checked("cloudwatch", "GetMetricStatistics", params)
        assert params["MetricName"] == "PoolBacklog" and params["Statistics"] == ["Maximum"], params
        return {
            "Datapoints": [{"Timestamp": datetime.now(UTC), "Maximum": float(self.canary.largest_backlog)}]
        }
