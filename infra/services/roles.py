"""The services of the app's roles, as FargateService arguments built from the stack config.

Each role runs the same image with its own command (containers.py); what differs between them is
here: how many tasks, on which capacity, how a deployment replaces them, and what they wait for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi

from infra.app_contract import CONTAINER_PORT, Role
from infra.autoscaling.publisher import QueueMetricsPublisher
from infra.config.stack import StackConfig
from infra.image.image import AppImage
from infra.naming import Cloud, StackNames
from infra.services import containers
from infra.services.config import WorkerPool
from infra.services.fargate import (
    FargateServiceArgs,
    FargateTaskArgs,
    LoadBalancerTarget,
    Placement,
    TaskRuntime,
)

WEB_HEALTH_CHECK_GRACE_SECONDS = 60
WEB = "web"


def worker_service_key(pool: WorkerPool) -> str:
    """The logical name of a pool's service, also the end of its physical name."""
    return f"worker-{pool.name}"


def scheduler_service_key(config: StackConfig) -> str:
    return "beat" if config.beat.enabled else "queue-metrics"


def service_keys(config: StackConfig) -> list[str]:
    """Every service of the stack, by logical name (its physical name is StackNames.service(key))."""
    return [WEB, *(worker_service_key(pool) for pool in config.workers.pools), scheduler_service_key(config)]


@dataclass(frozen=True)
class TaskData:
    """The stack's data as every task reaches it, besides the secrets."""

    media_bucket_name: pulumi.Input[str]
    database_instance: str  # the RDS identifier behind DATABASE_URL
    # Permissions of every task role (media files, ECS Exec sessions): suffix -> policy JSON.
    task_role_policies: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    key_arn: pulumi.Input[str] | None = None  # the stack's KMS key


def task_runtime(
    config: StackConfig,
    names: StackNames,
    image: AppImage,
    secret_arns: Mapping[str, pulumi.Output[str]],
    host_names: pulumi.Output[list[str]],
    cloud: Cloud,
    data: TaskData,
) -> TaskRuntime:
    """What every task of the stack shares: the image, the environment, the secrets, the roles' scope."""
    context = pulumi.Output.all(
        image.image_ref, host_names, cloud.region, pulumi.Output.all(**secret_arns), data.media_bucket_name
    ).apply(
        lambda values: containers.ContainerContext(
            image=values[0],
            environment={
                **containers.shared_environment(config, values[1], values[2]),
                **containers.data_environment(values[4], data.database_instance),
            },
            secret_arns=values[3],
            region=values[2],
        )
    )
    return TaskRuntime(
        containers=context,
        secret_arns=list(secret_arns.values()),
        repository_arn=image.repository_arn,
        account_id=cloud.account_id,
        names=names,
        log_retention_days=config.logs.retention_days,
        cpu_architecture=config.image.cpu_architecture,
        keep_previous_revisions=not config.ephemeral,
        task_role_policies=data.task_role_policies,
        key_arn=data.key_arn,
    )


def web_service(
    config: StackConfig,
    runtime: TaskRuntime,
    placement: Placement,
    target_group_arn: pulumi.Input[str],
    depends_on: Sequence[pulumi.Resource],
) -> FargateServiceArgs:
    """gunicorn behind the ALB; `pulumi up` waits until the new tasks are healthy (or rolled back).
    The service starts with the minimum count; then web autoscaling owns the count."""
    return FargateServiceArgs(
        task=FargateTaskArgs(config.web.size, [containers.web_container(config)], runtime),
        placement=placement,
        desired_count=config.web.scaling.min_count,
        spot=config.web.spot,
        autoscaled=True,
        load_balancer=LoadBalancerTarget(
            target_group_arn=target_group_arn,
            container_name=Role.WEB.value,
            container_port=CONTAINER_PORT,
            health_check_grace_period_seconds=WEB_HEALTH_CHECK_GRACE_SECONDS,
        ),
        wait_for_steady_state=True,
        depends_on=depends_on,
    )


def worker_service(
    config: StackConfig,
    pool: WorkerPool,
    runtime: TaskRuntime,
    placement: Placement,
    depends_on: Sequence[pulumi.Resource],
    task_role_policies: Mapping[str, pulumi.Input[str]] | None = None,
) -> FargateServiceArgs:
    """One pool's workers; Application Auto Scaling owns the task count once the service exists.

    `task_role_policies`: what the workers call themselves, e.g. their scale-in protection. A
    deployment starts the new tasks beside the old ones (maximum 200 %), so protected old workers
    finish their tasks while the new ones already take work.
    """
    return FargateServiceArgs(
        task=FargateTaskArgs(
            pool.size,
            [containers.worker_container(pool, config.workers.stop_timeout_seconds)],
            runtime,
            task_role_policies=task_role_policies or {},
        ),
        placement=placement,
        desired_count=pool.min_count,
        spot=pool.spot,
        autoscaled=True,
        depends_on=depends_on,
    )


def scheduler_service(
    config: StackConfig,
    publisher: QueueMetricsPublisher,
    publisher_policy: Mapping[str, pulumi.Input[str]],
    runtime: TaskRuntime,
    placement: Placement,
    depends_on: Sequence[pulumi.Resource],
) -> FargateServiceArgs:
    """Celery Beat with the queue-metrics publisher as a non-essential sidecar (a metrics failure
    never stops the scheduler); without Beat, the publisher alone in a one-task service.

    Exactly one Beat: the old task stops before the new one starts, and no AZ rebalancing adds one.
    """
    beat = config.beat.enabled
    if beat:
        specs = [containers.beat_container(), containers.queue_metrics_container(publisher, essential=False)]
    else:
        specs = [containers.queue_metrics_container(publisher, essential=True)]
    return FargateServiceArgs(
        task=FargateTaskArgs(config.beat.size, specs, runtime, task_role_policies=publisher_policy),
        placement=placement,
        desired_count=1,
        spot=beat and config.beat.spot,
        minimum_healthy_percent=0 if beat else 100,
        maximum_percent=100 if beat else 200,
        availability_zone_rebalancing=not beat,
        depends_on=depends_on,
    )
