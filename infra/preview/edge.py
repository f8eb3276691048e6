"""The preview base's front door: one dual-stack ALB, HTTP redirected to HTTPS, and an HTTPS listener
under a wildcard certificate whose default action answers 404, so a host name no preview claims
(`pr-N.<domain>` of a destroyed preview) never reaches anything. Each preview adds its own
host-header rule and target group (infra/preview/thin.py). `*.<domain>` points at the ALB with A and
AAAA alias records, and ACM validates the wildcard certificate through DNS in the same zone: the
validation record of `*.<domain>` is the one of `<domain>` (ACM user guide, DNS validation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.web.domain import PublicDomain, PublicDomainArgs
from infra.web.load_balancer import TLS_POLICY, public_load_balancer

NOT_FOUND_BODY = "No preview at this address."


@dataclass(frozen=True)
class PreviewEdgeArgs:
    domain: str  # previews are pr-N.<domain>
    hosted_zone_id: str
    subnet_ids: Sequence[pulumi.Input[str]]  # public
    security_group_id: pulumi.Input[str]
    idle_timeout_seconds: int
    protect: bool


def not_found() -> aws.lb.ListenerDefaultActionArgs:
    return aws.lb.ListenerDefaultActionArgs(
        type="fixed-response",
        fixed_response=aws.lb.ListenerDefaultActionFixedResponseArgs(
            content_type="text/plain", message_body=NOT_FOUND_BODY, status_code="404"
        ),
    )


class PreviewEdge(pulumi.ComponentResource):
    dns_name: pulumi.Output[str]
    arn: pulumi.Output[str]
    arn_suffix: pulumi.Output[str]  # the `LoadBalancer` dimension of the previews' request metrics
    https_listener_arn: pulumi.Output[str]

    def __init__(self, name: str, args: PreviewEdgeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("djcelery:index:PreviewEdge", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        load_balancer = public_load_balancer(
            f"{name}-alb",
            args.subnet_ids,
            args.security_group_id,
            args.idle_timeout_seconds,
            pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        domain = PublicDomain(
            f"{name}-domain",
            PublicDomainArgs(
                f"*.{args.domain}", args.hosted_zone_id, True, load_balancer.dns_name, load_balancer.zone_id
            ),
            child,
        )
        aws.lb.Listener(
            f"{name}-http",
            load_balancer_arn=load_balancer.arn,
            port=80,
            protocol="HTTP",
            default_actions=[
                aws.lb.ListenerDefaultActionArgs(
                    type="redirect",
                    redirect=aws.lb.ListenerDefaultActionRedirectArgs(
                        protocol="HTTPS", port="443", status_code="HTTP_301"
                    ),
                )
            ],
            opts=child,
        )
        https = aws.lb.Listener(
            f"{name}-https",
            load_balancer_arn=load_balancer.arn,
            port=443,
            protocol="HTTPS",
            ssl_policy=TLS_POLICY,
            certificate_arn=domain.certificate_arn,
            default_actions=[not_found()],
            opts=child,
        )
        self.dns_name = load_balancer.dns_name
        self.arn = load_balancer.arn
        self.arn_suffix = load_balancer.arn_suffix
        self.https_listener_arn = https.arn
        self.register_outputs({"dns_name": self.dns_name, "https_listener_arn": self.https_listener_arn})
