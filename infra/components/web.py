"""The public entry point: an ALB in the public subnets forwarding to the web tasks.

The target group checks `/healthz`. With a certificate, HTTPS uses a TLS 1.3 policy and plain HTTP
answers with a redirect to HTTPS; without one, HTTP forwards to the app.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.app_contract import CONTAINER_PORT, LIVENESS_PATH

# TLS 1.3 only: one of the policies Security Hub ELB.17 accepts.
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-3-2021-06"
# Deploys stop old tasks faster than the 300 s default; requests are short (long work goes to Celery).
DEREGISTRATION_DELAY_SECONDS = 30


@dataclass(frozen=True)
class WebLoadBalancerArgs:
    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    idle_timeout_seconds: int
    deletion_protection: bool
    certificate_arn: str  # empty: HTTP only


class WebLoadBalancer(pulumi.ComponentResource):
    dns_name: pulumi.Output[str]
    target_group_arn: pulumi.Output[str]
    listeners: list[aws.lb.Listener]  # services attached to the target group wait for these

    def __init__(
        self, name: str, args: WebLoadBalancerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("djcelery:index:WebLoadBalancer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        load_balancer = aws.lb.LoadBalancer(
            f"{name}-alb",
            load_balancer_type="application",
            internal=False,
            subnets=list(args.subnet_ids),
            security_groups=[args.security_group_id],
            drop_invalid_header_fields=True,
            enable_deletion_protection=args.deletion_protection,
            idle_timeout=args.idle_timeout_seconds,
            opts=child,
        )
        target_group = aws.lb.TargetGroup(
            f"{name}-targets",
            target_type="ip",
            port=CONTAINER_PORT,
            protocol="HTTP",
            vpc_id=args.vpc_id,
            deregistration_delay=DEREGISTRATION_DELAY_SECONDS,
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                path=LIVENESS_PATH,
                protocol="HTTP",
                matcher="200",
                interval=15,
                timeout=5,
                healthy_threshold=2,
                unhealthy_threshold=3,
            ),
            opts=child,
        )
        forward = aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=target_group.arn)
        if args.certificate_arn:
            redirect = aws.lb.ListenerDefaultActionArgs(
                type="redirect",
                redirect=aws.lb.ListenerDefaultActionRedirectArgs(
                    protocol="HTTPS", port="443", status_code="HTTP_301"
                ),
            )
            self.listeners = [
                aws.lb.Listener(
                    f"{name}-http",
                    load_balancer_arn=load_balancer.arn,
                    port=80,
                    protocol="HTTP",
                    default_actions=[redirect],
                    opts=child,
                ),
                aws.lb.Listener(
                    f"{name}-https",
                    load_balancer_arn=load_balancer.arn,
                    port=443,
                    protocol="HTTPS",
                    ssl_policy=TLS_POLICY,
                    certificate_arn=args.certificate_arn,
                    default_actions=[forward],
                    opts=child,
                ),
            ]
        else:
            self.listeners = [
                aws.lb.Listener(
                    f"{name}-http",
                    load_balancer_arn=load_balancer.arn,
                    port=80,
                    protocol="HTTP",
                    default_actions=[forward],
                    opts=child,
                ),
            ]
        self.dns_name = load_balancer.dns_name
        self.target_group_arn = target_group.arn
        self.register_outputs({"dns_name": self.dns_name, "target_group_arn": self.target_group_arn})
