"""Autoscaling of the web service: target tracking on requests per task and on CPU.

Application Auto Scaling moves the service's task count between `webMinCount` and `webMaxCount`.
With two target-tracking policies it adds tasks as soon as either metric is above its target and
removes one only when both are below theirs. Scale-out reacts within about a minute of CloudWatch
data; scale-in waits longer, and a task leaving the service first drains at the load balancer
(its requests finish, no new ones arrive) before ECS stops it (`WebConfig.deregistration_delay_seconds`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from pulumi_aws.appautoscaling import (
    PolicyTargetTrackingScalingPolicyConfigurationArgsDict as TargetTracking,
)
from pulumi_aws.appautoscaling import (
    PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgsDict as PredefinedMetric,
)

from infra.web.config import WebScaling

SCALABLE_DIMENSION = "ecs:service:DesiredCount"
SCALE_OUT_COOLDOWN_SECONDS = 60
SCALE_IN_COOLDOWN_SECONDS = 300  # a burst that ends is often followed by another
REQUESTS_METRIC = "ALBRequestCountPerTarget"
CPU_METRIC = "ECSServiceAverageCPUUtilization"


@dataclass(frozen=True)
class WebAutoscalingArgs:
    cluster_name: pulumi.Input[str]
    service_name: pulumi.Input[str]
    # `app/<alb>/<id>/targetgroup/<target group>/<id>`: whose requests per target are tracked.
    request_count_label: pulumi.Input[str]
    scaling: WebScaling


def tracking(metric: str, target: float, resource_label: pulumi.Input[str] | None = None) -> TargetTracking:
    """A target-tracking configuration on one of the predefined ECS metrics."""
    metric_specification: PredefinedMetric = {"predefined_metric_type": metric}
    if resource_label is not None:
        metric_specification["resource_label"] = resource_label
    return {
        "target_value": target,
        "scale_out_cooldown": SCALE_OUT_COOLDOWN_SECONDS,
        "scale_in_cooldown": SCALE_IN_COOLDOWN_SECONDS,
        "predefined_metric_specification": metric_specification,
    }


class WebAutoscaling(pulumi.ComponentResource):
    target: aws.appautoscaling.Target
    policies: list[aws.appautoscaling.Policy]

    def __init__(
        self, name: str, args: WebAutoscalingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("djcelery:index:WebAutoscaling", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.target = aws.appautoscaling.Target(
            f"{name}-target",
            service_namespace="ecs",
            scalable_dimension=SCALABLE_DIMENSION,
            resource_id=pulumi.Output.concat("service/", args.cluster_name, "/", args.service_name),
            min_capacity=args.scaling.min_count,
            max_capacity=args.scaling.max_count,
            opts=child,
        )
        configurations = {
            "requests": tracking(REQUESTS_METRIC, args.scaling.requests_per_task, args.request_count_label),
            "cpu": tracking(CPU_METRIC, args.scaling.cpu_percent),
        }
        self.policies = [
            aws.appautoscaling.Policy(
                f"{name}-{key}",
                policy_type="TargetTrackingScaling",
                service_namespace=self.target.service_namespace,
                scalable_dimension=self.target.scalable_dimension,
                resource_id=self.target.resource_id,
                target_tracking_scaling_policy_configuration=configuration,
                opts=child,
            )
            for key, configuration in configurations.items()
        ]
        self.register_outputs({"target_resource_id": self.target.resource_id})
