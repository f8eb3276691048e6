"""The web service: gunicorn behind the load balancer, its autoscaling and its rollout check.

`pulumi up` waits until the new web tasks are healthy (and, when the deployment shifts traffic,
until the traffic steps and the bake time are over), and fails if ECS rolled the deployment back:
its circuit breaker (rolling), or its deployment alarms (canary, linear, blue/green:
infra/web/traffic.py). The service starts with the minimum count; then web autoscaling owns it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from infra import app_contract
from infra.app_contract import CONTAINER_PORT, Role
from infra.network.network import PUBLIC_SUBNET_CIDRS
from infra.services.containers import STOP_TIMEOUT_SECONDS, ContainerSpec
from infra.services.fargate import (
    FargateService,
    FargateServiceArgs,
    FargateTaskArgs,
    LoadBalancerTarget,
    Placement,
    TaskRuntime,
)
from infra.services.moved import from_app_services
from infra.services.rollout import verify_rollout
from infra.web.autoscaling import WebAutoscaling, WebAutoscalingArgs
from infra.web.config import WebConfig
from infra.web.load_balancer import WebTargets
from infra.web.traffic import TrafficShifting, TrafficShiftingArgs

SERVICE_KEY = Role.WEB.value  # the service's logical name, also the end of its physical name
HEALTH_CHECK_GRACE_SECONDS = 60
ROLLOUT_TIMEOUT_SECONDS = 10 * 60
# gunicorn must finish in-flight requests before ECS sends SIGKILL.
GUNICORN_GRACEFUL_TIMEOUT_SECONDS = STOP_TIMEOUT_SECONDS - 5
# gunicorn keeps idle connections open longer than the ALB, or the ALB reuses closed ones (502s).
GUNICORN_KEEPALIVE_MARGIN_SECONDS = 15


def web_container(web: WebConfig) -> ContainerSpec:
    # No container health check: the ALB target group checks /healthz and ECS replaces failing tasks.
    return ContainerSpec(
        role=Role.WEB,
        command=app_contract.web_command(),
        stop_timeout_seconds=STOP_TIMEOUT_SECONDS,
        port=CONTAINER_PORT,
        environment={
            app_contract.GUNICORN_TIMEOUT: str(web.gunicorn_timeout_seconds),
            app_contract.GUNICORN_KEEPALIVE: str(
                web.alb_idle_timeout_seconds + GUNICORN_KEEPALIVE_MARGIN_SECONDS
            ),
            app_contract.GUNICORN_GRACEFUL_TIMEOUT: str(GUNICORN_GRACEFUL_TIMEOUT_SECONDS),
            app_contract.GUNICORN_WORKERS: str(web.gunicorn_workers),
            app_contract.GUNICORN_THREADS: str(web.gunicorn_threads),
            app_contract.ADMIN_ALLOWED_CIDRS: ",".join(web.admin_allowed_cidrs),
            # The load balancer's nodes live in the public subnets: the only peers gunicorn trusts.
            app_contract.FORWARDED_ALLOW_IPS: ",".join(PUBLIC_SUBNET_CIDRS),
        },
    )


@dataclass(frozen=True)
class WebServiceArgs:
    web: WebConfig
    runtime: TaskRuntime
    placement: Placement
    cluster_name: str  # Application Auto Scaling names the service by its cluster's name
    region: pulumi.Input[str]
    targets: WebTargets  # where web tasks register, and how their requests are measured
    # What every task needs at start and the release, then the target group's listeners, their
    # admin rules and the firewall: the app is never reachable without them.
    depends_on: Sequence[pulumi.Resource]


class WebService(pulumi.ComponentResource):
    service: FargateService
    traffic: TrafficShifting | None  # None: a rolling deployment

    def __init__(self, name: str, args: WebServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("djcelery:index:WebService", name, None, opts)
        moved = pulumi.ResourceOptions.merge(pulumi.ResourceOptions(parent=self), from_app_services())
        web, targets = args.web, args.targets
        self.traffic = self._traffic(web, targets) if web.deployment.shifts_traffic else None
        self.service = FargateService(
            SERVICE_KEY,
            FargateServiceArgs(
                task=FargateTaskArgs(web.size, [web_container(web)], args.runtime),
                placement=args.placement,
                desired_count=web.scaling.min_count,
                spot=web.spot,
                autoscaled=True,
                load_balancer=LoadBalancerTarget(
                    target_group_arn=targets.target_group_arns[0],
                    container_name=Role.WEB.value,
                    container_port=CONTAINER_PORT,
                    health_check_grace_period_seconds=HEALTH_CHECK_GRACE_SECONDS,
                    traffic_shift=self.traffic.shift if self.traffic else None,
                ),
                wait_for_steady_state=True,
                depends_on=[*args.depends_on, *([self.traffic] if self.traffic else [])],
            ),
            moved,
        )
        WebAutoscaling(
            f"{SERVICE_KEY}-autoscaling",
            WebAutoscalingArgs(
                args.cluster_name,
                self.service.service_name,
                targets.load_balancer_arn_suffix,
                targets.target_group_arn_suffixes,
                web.scaling,
            ),
            moved,
        )
        verify_rollout(self.service, args.placement.cluster_arn, args.region, ROLLOUT_TIMEOUT_SECONDS, moved)
        self.register_outputs({"service_name": self.service.service_name})

    def _traffic(self, web: WebConfig, targets: WebTargets) -> TrafficShifting:
        """The rules, role and alarms with which ECS moves traffic between the two target groups."""
        return TrafficShifting(
            f"{SERVICE_KEY}-traffic",
            TrafficShiftingArgs(
                deployment=web.deployment,
                listener_arn=targets.listener_arn,
                load_balancer_arn_suffix=targets.load_balancer_arn_suffix,
                primary_target_group_arn=targets.target_group_arns[0],
                alternate_target_group_arn=targets.target_group_arns[1],
            ),
            pulumi.ResourceOptions(parent=self),
        )
