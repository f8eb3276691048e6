"""The scheduler service: exactly one Celery Beat, with the queue-metrics publisher beside it.

The publisher is a non-essential sidecar of Beat (a metrics failure never stops the scheduler);
without Beat it runs alone in a one-task service. Exactly one Beat: a deployment stops the old task
before it starts the new one (minimum 0 %, maximum 100 %), and no AZ rebalancing adds one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from infra import app_contract
from infra.app_contract import Role
from infra.naming import Cloud, StackNames
from infra.scheduler.config import BeatConfig
from infra.scheduler.publisher import QueueMetricsPublisher, publisher_task_policy, queue_metrics_publisher
from infra.services.containers import STOP_TIMEOUT_SECONDS, ContainerSpec, heartbeat_health_check
from infra.services.fargate import FargateService, FargateServiceArgs, FargateTaskArgs, Placement, TaskRuntime
from infra.services.moved import from_app_services
from infra.workers.config import WorkersConfig


def beat_container() -> ContainerSpec:
    return ContainerSpec(
        role=Role.BEAT,
        command=app_contract.beat_command(),
        stop_timeout_seconds=STOP_TIMEOUT_SECONDS,
        health_check=heartbeat_health_check(app_contract.BEAT_HEARTBEAT_FILE),
    )


def queue_metrics_container(publisher: QueueMetricsPublisher, *, essential: bool) -> ContainerSpec:
    """The publisher that feeds worker autoscaling: a sidecar of Beat (non-essential, so a metrics
    failure never stops the scheduler), or the only container of its own task without Beat."""
    return ContainerSpec(
        role=Role.QUEUE_METRICS,
        command=app_contract.queue_metrics_command(),
        stop_timeout_seconds=STOP_TIMEOUT_SECONDS,
        essential=essential,
        environment={
            app_contract.QUEUE_METRICS_NAMESPACE: publisher.namespace,
            app_contract.QUEUE_METRICS_INTERVAL_SECONDS: str(publisher.interval_seconds),
            app_contract.QUEUE_METRICS_POOLS: publisher.pools_json,
            app_contract.ECS_CLUSTER: publisher.cluster_name,
        },
    )


@dataclass(frozen=True)
class SchedulerArgs:
    beat: BeatConfig
    workers: WorkersConfig  # the pools the publisher measures, and how often
    runtime: TaskRuntime
    placement: Placement
    names: StackNames
    cloud: Cloud
    depends_on: Sequence[pulumi.Resource]  # what every task needs at start, and the release


class Scheduler(pulumi.ComponentResource):
    service: FargateService

    def __init__(self, name: str, args: SchedulerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("djcelery:index:Scheduler", name, None, opts)
        beat, names = args.beat, args.names
        publisher = queue_metrics_publisher(
            args.workers.pools, names, args.workers.timings.publish_interval_seconds
        )
        if beat.enabled:
            specs = [beat_container(), queue_metrics_container(publisher, essential=False)]
        else:
            specs = [queue_metrics_container(publisher, essential=True)]
        policy = {"queue-metrics": publisher_task_policy(names, args.cloud)}
        self.service = FargateService(
            beat.service_key,
            FargateServiceArgs(
                task=FargateTaskArgs(beat.size, specs, args.runtime, task_role_policies=policy),
                placement=args.placement,
                desired_count=1,
                spot=beat.enabled and beat.spot,
                minimum_healthy_percent=0 if beat.enabled else 100,
                maximum_percent=100 if beat.enabled else 200,
                availability_zone_rebalancing=not beat.enabled,
                depends_on=args.depends_on,
            ),
            pulumi.ResourceOptions.merge(pulumi.ResourceOptions(parent=self), from_app_services()),
        )
        self.register_outputs({"service_name": self.service.service_name})
