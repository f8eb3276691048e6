"""The worker canary's dynamic provider: runs a pool's canary before the pool rolls (canary.py).

Like the release providers (infra/release/provider.py), it is pickled into the state by reference:
the class and the client factory are module-level names of this installed module.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from infra.dynamic_providers import RunOnChangeProvider
from infra.ecs_tasks import Clock, FargateNetwork, Sleep
from infra.workers.canary import (
    DEFAULT_POLL_INTERVAL_SECONDS,
    CanaryError,
    CanaryPlan,
    breach_message,
    previous_task_definition,
    run_canary,
)

MINUTE = 60


@dataclass(frozen=True)
class CanaryClients:
    ecs: Any
    logs: Any
    cloudwatch: Any


def canary_clients(region: str) -> CanaryClients:
    """Clients from the standard AWS credential chain (environment, profile, SSO, role)."""
    session = boto3.session.Session(region_name=region)
    config = Config(retries={"mode": "standard", "max_attempts": 10})
    return CanaryClients(
        ecs=session.client("ecs", config=config),
        logs=session.client("logs", config=config),
        cloudwatch=session.client("cloudwatch", config=config),
    )


def canary_plan(props: dict[str, Any]) -> CanaryPlan:
    return CanaryPlan(
        pool=props["pool"],
        cluster=props["cluster"],
        service=props["service"],
        task_definition_arn=props["task_definition_arn"],
        container_name=props["container_name"],
        network=FargateNetwork(
            list(props["subnet_ids"]), list(props["security_group_ids"]), bool(props["assign_public_ip"])
        ),
        log_group_name=props["log_group_name"],
        image_digest=props["image_digest"],
        metric_namespace=props["metric_namespace"],
        window_seconds=float(props["window_minutes"]) * MINUTE,
        max_failure_percent=int(props["max_failure_percent"]),
        stop_timeout_seconds=float(props["stop_timeout_seconds"]),
    )


class WorkerCanaryProvider(RunOnChangeProvider):
    """On a new task definition of the pool: its canary, unless the pool's service does not run yet
    or already runs it. Fails the update when the canary fails."""

    TRIGGERS = ("task_definition_arn",)

    def __init__(
        self,
        clients: Callable[[str], CanaryClients] = canary_clients,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        poll_interval_seconds: float = DEFAULT_POLL_INTERVAL_SECONDS,
    ) -> None:
        super().__init__(sleep=sleep, clock=clock, poll_interval_seconds=poll_interval_seconds)
        self._canary_clients = clients

    def _run(self, props: dict[str, Any]) -> dict[str, Any]:
        plan = canary_plan(props)
        clients = self._canary_clients(props["region"])
        running = previous_task_definition(clients.ecs, plan)
        if running is None or running == plan.task_definition_arn:
            why = "the pool's service does not run yet" if running is None else "the pool already runs it"
            return {**props, "verdict": f"skipped: {why}", "task_arn": None, "runs": 0, "failed": 0}
        verdict, run = run_canary(
            clients,
            plan,
            poll_interval_seconds=self._poll_interval_seconds,
            sleep=self._sleep,
            clock=self._clock,
        )
        if not verdict.passed:
            raise CanaryError(breach_message(plan.pool, verdict, run.task_arn))
        return {
            **props,
            "verdict": f"passed: {verdict.reason}",
            "task_arn": run.task_arn,
            "runs": verdict.runs,
            "failed": verdict.failed,
        }
