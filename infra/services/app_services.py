"""The app's long-running services: web behind the load balancer with its request and CPU
autoscaling, one service per worker pool with its queue autoscaling, and Celery Beat with the
queue-metrics publisher beside it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from infra.autoscaling.autoscaling import WorkerAutoscaling, WorkerAutoscalingArgs
from infra.autoscaling.protection import worker_task_policy
from infra.autoscaling.publisher import publisher_task_policy, queue_metrics_publisher
from infra.config.stack import StackConfig
from infra.naming import Cloud, StackNames
from infra.release.release import RolloutCheck, RolloutCheckArgs
from infra.services import roles
from infra.services.config import WorkerPool
from infra.services.fargate import FargateService, Placement, TaskRuntime
from infra.web.autoscaling import WebAutoscaling, WebAutoscalingArgs

WEB_ROLLOUT_TIMEOUT_SECONDS = 10 * 60


@dataclass(frozen=True)
class AppServicesArgs:
    config: StackConfig
    names: StackNames
    cloud: Cloud
    runtime: TaskRuntime
    placement: Placement
    target_group_arn: pulumi.Input[str]  # where web tasks register
    # The target group's listeners, their admin rules and the firewall: web waits for them all.
    edge: Sequence[pulumi.Resource]
    request_count_label: pulumi.Input[str]  # the target group, as web autoscaling tracks its requests
    alarm_topic_arn: pulumi.Input[str]  # where the pools' queue-age and publisher-silent alarms go
    depends_on: Sequence[pulumi.Resource]  # what every task needs at start, and the release


class AppServices(pulumi.ComponentResource):
    web: FargateService
    workers: dict[str, FargateService]  # by pool name
    scheduler: FargateService  # Beat, or the publisher alone without Beat
    by_key: dict[str, FargateService]  # every service by its logical name

    def __init__(self, name: str, args: AppServicesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("djcelery:index:AppServices", name, None, opts)
        self._args = args
        self.web = self._web()
        self.workers = {pool.name: self._worker_pool(pool) for pool in args.config.workers.pools}
        self.scheduler = self._scheduler()
        self.by_key = {
            roles.WEB: self.web,
            **{roles.worker_service_key(pool): self.workers[pool.name] for pool in args.config.workers.pools},
            roles.scheduler_service_key(args.config): self.scheduler,
        }
        self.register_outputs({key: service.service_name for key, service in self.by_key.items()})

    def _web(self) -> FargateService:
        args, child = self._args, pulumi.ResourceOptions(parent=self)
        web = FargateService(
            roles.WEB,
            roles.web_service(
                args.config,
                args.runtime,
                args.placement,
                args.target_group_arn,
                [*args.depends_on, *args.edge],
            ),
            child,
        )
        WebAutoscaling(
            f"{roles.WEB}-autoscaling",
            WebAutoscalingArgs(
                args.names.prefix, web.service_name, args.request_count_label, args.config.web.scaling
            ),
            child,
        )
        # `pulumi up` fails if ECS's circuit breaker rolled the web deployment back.
        RolloutCheck(
            f"{roles.WEB}-rollout",
            RolloutCheckArgs(
                args.placement.cluster_arn,
                web.service_name,
                web.task.task_definition_arn,
                args.cloud.region,
                WEB_ROLLOUT_TIMEOUT_SECONDS,
                web,
            ),
            child,
        )
        return web

    def _worker_pool(self, pool: WorkerPool) -> FargateService:
        args, key = self._args, roles.worker_service_key(pool)
        protection = {"scale-in-protection": worker_task_policy(args.names, args.cloud)}
        service = FargateService(
            key,
            roles.worker_service(
                args.config, pool, args.runtime, args.placement, args.depends_on, protection
            ),
            pulumi.ResourceOptions(parent=self),
        )
        WorkerAutoscaling(
            f"{key}-autoscaling",
            WorkerAutoscalingArgs(
                cluster_name=args.names.prefix,
                service_name=service.service_name,
                pool=pool.name,
                parameters=args.config.scaling.parameters(pool),
                metric_namespace=args.names.metric_namespace,
                alarm_actions=[args.alarm_topic_arn],
            ),
            pulumi.ResourceOptions(parent=self),
        )
        return service

    def _scheduler(self) -> FargateService:
        args = self._args
        config, names = args.config, args.names
        publisher = queue_metrics_publisher(
            config.workers.pools,
            {pool.name: names.service(roles.worker_service_key(pool)) for pool in config.workers.pools},
            names.metric_namespace,
            config.scaling.queue_metrics_interval_seconds,
            cluster_name=names.prefix,
        )
        policy = {"queue-metrics": publisher_task_policy(names, args.cloud)}
        return FargateService(
            roles.scheduler_service_key(config),
            roles.scheduler_service(config, publisher, policy, args.runtime, args.placement, args.depends_on),
            pulumi.ResourceOptions(parent=self),
        )
