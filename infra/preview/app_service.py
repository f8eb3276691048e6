"""A thin preview's app: one ECS service whose one Fargate Spot task runs web, a worker and Beat.

A preview is opened to be looked at, not to carry load: its task holds the web container (the
load balancer's target, as the web role builds it), one worker consuming the queues of every pool
with one process, and Beat when the stack runs it. Nothing scales it, no canary gates it and no
alarm watches it (a preview pages nobody); the full-copy stack is where per-pool services,
autoscaling, canaries and alarms are exercised.

Exactly one Beat, even during a deploy: the old task stops before the new one starts (minimum
0 %, maximum 100 %, as infra/scheduler/scheduler.py), and no AZ rebalancing starts a second one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from infra.app_contract import CONTAINER_PORT, Role
from infra.naming import Cloud, StackNames
from infra.preview.config import PREVIEW_WORKER_CONCURRENCY
from infra.scheduler.config import BeatConfig
from infra.scheduler.scheduler import beat_container
from infra.service_outputs import RoleServices
from infra.services.containers import ContainerSpec
from infra.services.fargate import (
    FargateService,
    FargateServiceArgs,
    FargateTaskArgs,
    LoadBalancerTarget,
    Placement,
    TaskRuntime,
)
from infra.services.rollout import verify_rollout
from infra.services.task_sizes import TaskSize
from infra.web.config import WebConfig
from infra.web.service import HEALTH_CHECK_GRACE_SECONDS, ROLLOUT_TIMEOUT_SECONDS, web_container
from infra.workers.config import WorkersConfig
from infra.workers.pool import worker_container
from infra.workers.protection import worker_task_policy

SERVICE_KEY = "app"  # the service's logical name, also the end of its physical name
# 0.25 vCPU / 1 GiB: a Fargate pair (infra/services/task_sizes.py). No container sets its own CPU or
# memory, so the three share the task's; each may fill its /tmp tmpfs (containers.TMP_SIZE_MIB)
# from the same memory.
TASK_SIZE = TaskSize(cpu=256, memory=1024)
# The worker's name in its Celery hostname (`preview@<host>`), in place of a pool's.
WORKER_NAME = "preview"


def preview_worker(workers: WorkersConfig) -> ContainerSpec:
    """One worker on the queues of every pool: the pool worker's container (the contract's worker
    command, so `app_contract.role_of` sees a worker), PREVIEW_WORKER_CONCURRENCY processes taking
    one message at a time, with the tightest per-process memory limit any pool sets."""
    first = workers.pools[0]
    limits = [pool.max_memory_per_child_mib for pool in workers.pools if pool.max_memory_per_child_mib]
    every_queue = dataclasses.replace(
        first,
        name=WORKER_NAME,
        queues=tuple(workers.consumed_queues),
        scaling=dataclasses.replace(first.scaling, concurrency=PREVIEW_WORKER_CONCURRENCY),
        stop_timeout_seconds=workers.stop_timeout_seconds,
        prefetch_multiplier=1,
        max_memory_per_child_mib=min(limits, default=0),
    )
    return worker_container(every_queue)


def preview_containers(web: WebConfig, workers: WorkersConfig, beat: BeatConfig) -> list[ContainerSpec]:
    """Web first (the task's main container: ops commands and the load balancer use it), the
    worker, Beat when the stack runs it. All essential: a worker or Beat that exits (or fails its
    heartbeat check) stops the task and ECS starts a new one, where a non-essential one would be
    restarted in place while the preview answers as if it worked."""
    specs = [web_container(web), preview_worker(workers)]
    if beat.enabled:
        specs.append(beat_container())
    return specs


@dataclass(frozen=True)
class PreviewAppArgs:
    web: WebConfig
    workers: WorkersConfig
    beat: BeatConfig
    runtime: TaskRuntime
    placement: Placement
    names: StackNames
    cloud: Cloud
    target_group_arn: pulumi.Input[str]  # the preview's target group, behind its host rule
    # What every task needs at start (secrets, tenant), the release, and the host rule: the
    # preview is never reachable without them.
    depends_on: Sequence[pulumi.Resource]


class PreviewApp(pulumi.ComponentResource):
    service: FargateService

    def __init__(self, name: str, args: PreviewAppArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("djcelery:index:PreviewApp", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.beat_enabled = args.beat.enabled
        # The worker still protects its task while it runs one, so a deploy lets it finish.
        protection = {"scale-in-protection": worker_task_policy(args.names, args.cloud)}
        self.service = FargateService(
            SERVICE_KEY,
            FargateServiceArgs(
                task=FargateTaskArgs(
                    TASK_SIZE,
                    preview_containers(args.web, args.workers, args.beat),
                    args.runtime,
                    protection,
                ),
                placement=args.placement,
                desired_count=1,
                spot=True,
                minimum_healthy_percent=0,
                maximum_percent=100,
                availability_zone_rebalancing=False,
                load_balancer=LoadBalancerTarget(
                    target_group_arn=args.target_group_arn,
                    container_name=Role.WEB.value,
                    container_port=CONTAINER_PORT,
                    health_check_grace_period_seconds=HEALTH_CHECK_GRACE_SECONDS,
                ),
                # `pulumi up` returns once the preview answers.
                wait_for_steady_state=True,
                depends_on=args.depends_on,
            ),
            child,
        )
        verify_rollout(
            self.service, args.placement.cluster_arn, args.cloud.region, ROLLOUT_TIMEOUT_SECONDS, child
        )
        self.pools = tuple(pool.name for pool in args.workers.pools)
        self.worker_keys = tuple(pool.service_key for pool in args.workers.pools)
        self.register_outputs({"service_name": self.service.service_name})

    def role_services(self) -> RoleServices:
        """Every role's service is this one: the outputs name it for web, each pool and Beat."""
        service, log_group = self.service, self.service.task.log_group_name
        roles = [Role.WEB.value, *self.worker_keys, *([Role.BEAT.value] if self.beat_enabled else [])]
        return RoleServices(
            web=service,
            workers=dict.fromkeys(self.pools, service),
            beat=service if self.beat_enabled else None,
            log_groups=dict.fromkeys(roles, log_group),
        )
