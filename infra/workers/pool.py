"""One worker pool: its Celery workers' service, their queue autoscaling, their scale-in
protection and the canary of each new image.

Before the service rolls to a new task definition, the pool's canary (canary.py), when the pool
has one, runs one task of it on the pool's queues and fails `pulumi up` if its tasks fail: the
service depends on it, so the old image keeps serving. Then the deployment starts the new tasks
beside the old ones (maximum 200 %), so protected old workers finish their tasks while the new ones
already take work. Application Auto Scaling owns the task count once the service exists; it starts
at the pool's minimum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from infra import app_contract
from infra.app_contract import Role
from infra.image.reference import digest_of
from infra.naming import Cloud, StackNames
from infra.services.containers import ContainerSpec, heartbeat_health_check
from infra.services.fargate import (
    FargateService,
    FargateServiceArgs,
    FargateTask,
    FargateTaskArgs,
    Placement,
    TaskRuntime,
)
from infra.services.moved import from_app_services
from infra.workers.autoscaling import WorkerAutoscaling, WorkerAutoscalingArgs
from infra.workers.canary_provider import WorkerCanaryProvider
from infra.workers.config import WorkerPoolConfig
from infra.workers.protection import worker_task_policy


def worker_container(pool: WorkerPoolConfig) -> ContainerSpec:
    return ContainerSpec(
        role=Role.WORKER,
        command=app_contract.worker_command(
            pool.name, pool.queues, pool.concurrency, pool.prefetch_multiplier, pool.max_memory_per_child_mib
        ),
        stop_timeout_seconds=pool.stop_timeout_seconds,
        health_check=heartbeat_health_check(app_contract.WORKER_HEARTBEAT_FILE),
    )


@dataclass(frozen=True)
class WorkerPoolArgs:
    pool: WorkerPoolConfig
    runtime: TaskRuntime
    placement: Placement
    names: StackNames
    cloud: Cloud
    alarm_topic_arn: pulumi.Input[str]  # where the queue-age, publisher-silent and calibration alarms go
    depends_on: Sequence[pulumi.Resource]  # what every task needs at start, and the release
    canary_max_failure_percent: int  # workerCanaryMaxFailurePercent


class WorkerCanary(pulumi.dynamic.Resource):
    """One canary of the pool's task definition (canary_provider.py); its outputs say how it went."""

    verdict: pulumi.Output[str]
    task_arn: pulumi.Output[str | None]

    def __init__(self, name: str, props: dict[str, object], opts: pulumi.ResourceOptions) -> None:
        outputs = dict.fromkeys(("verdict", "task_arn", "runs", "failed"))
        super().__init__(WorkerCanaryProvider(), name, {**props, **outputs}, opts)


@dataclass(frozen=True)
class PoolCanary:
    """The pool's canary, as the gate of its service's rollout (FargateServiceArgs.rollout_gate)."""

    pool: WorkerPoolConfig
    args: WorkerPoolArgs
    owner: pulumi.Resource  # the pool: the canary is its child

    def gate(self, task: FargateTask) -> pulumi.Resource:
        args, placement = self.args, self.args.placement
        props: dict[str, object] = {
            "pool": self.pool.name,
            "cluster": placement.cluster_arn,
            "service": args.names.service(self.pool.service_key),
            "task_definition_arn": task.task_definition_arn,
            "container_name": task.container_name,
            "subnet_ids": list(placement.subnet_ids),
            "security_group_ids": list(placement.security_group_ids),
            "assign_public_ip": placement.assign_public_ip,
            "log_group_name": task.log_group_name,
            "image_digest": args.runtime.containers.apply(lambda context: digest_of(context.image)),
            "metric_namespace": args.names.metric_namespace,
            "region": args.cloud.region,
            "window_minutes": self.pool.canary_minutes,
            "max_failure_percent": args.canary_max_failure_percent,
            "stop_timeout_seconds": self.pool.stop_timeout_seconds,
        }
        # The canary's task needs at start what the service's tasks need.
        depends_on = [*args.depends_on, task]
        return WorkerCanary(
            f"{self.pool.service_key}-canary",
            props,
            pulumi.ResourceOptions(parent=self.owner, depends_on=depends_on),
        )


class WorkerPool(pulumi.ComponentResource):
    service: FargateService
    autoscaling: WorkerAutoscaling

    def __init__(self, name: str, args: WorkerPoolArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("djcelery:index:WorkerPool", name, None, opts)
        pool, key = args.pool, args.pool.service_key
        moved = pulumi.ResourceOptions.merge(pulumi.ResourceOptions(parent=self), from_app_services())
        protection = {"scale-in-protection": worker_task_policy(args.names, args.cloud)}
        self.service = FargateService(
            key,
            FargateServiceArgs(
                task=FargateTaskArgs(pool.size, [worker_container(pool)], args.runtime, protection),
                placement=args.placement,
                desired_count=pool.scaling.min_count,
                spot=pool.spot,
                autoscaled=True,
                depends_on=args.depends_on,
                rollout_gate=PoolCanary(pool, args, self) if pool.canary_minutes else None,
            ),
            moved,
        )
        self.autoscaling = WorkerAutoscaling(
            f"{key}-autoscaling",
            WorkerAutoscalingArgs(
                cluster_name=args.names.cluster,
                service_name=self.service.service_name,
                pool=pool.name,
                policies=pool.policies,
                metric_namespace=args.names.metric_namespace,
                alarm_actions=[args.alarm_topic_arn],
            ),
            moved,
        )
        self.register_outputs({"service_name": self.service.service_name})
