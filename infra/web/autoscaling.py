"""Autoscaling of the web service: target tracking on requests per task and on CPU.

Application Auto Scaling moves the service's task count between `webMinCount` and `webMaxCount`.
With two target-tracking policies it adds tasks as soon as either metric is above its target and
removes one only when both are below theirs. Scale-out reacts within about a minute of CloudWatch
data; scale-in waits longer, and a task leaving the service first drains at the load balancer
(its requests finish, no new ones arrive) before ECS stops it (`WebConfig.deregistration_delay_seconds`).

With two target groups (a deployment that shifts traffic), requests per task are tracked as the
sum of `RequestCountPerTarget` of both groups: a group without traffic adds 0, so the sum is the
requests per task of whichever group serves, before, during and after a deployment, with no hook
to repoint the policy (AWS sample aws-samples/sample-amazon-ecs-blue-green-deployment-patterns,
ecs-bluegreen-autoscaling). Requests of the test listener rule count too: a short over-estimate.
ECS itself suspends scale-in while both revisions run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from pulumi_aws.appautoscaling import (
    PolicyTargetTrackingScalingPolicyConfigurationArgsDict as TargetTracking,
)
from pulumi_aws.appautoscaling import (
    PolicyTargetTrackingScalingPolicyConfigurationCustomizedMetricSpecificationArgsDict as CustomizedMetric,
)
from pulumi_aws.appautoscaling import (
    PolicyTargetTrackingScalingPolicyConfigurationCustomizedMetricSpecificationMetricArgsDict as MetricQuery,
)
from pulumi_aws.appautoscaling import (
    PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgsDict as PredefinedMetric,
)

from infra.cloudwatch.load_balancer import ALB_NAMESPACE
from infra.services.scaling import scaling_policy, service_scaling_target
from infra.web.config import WebScaling

SCALE_OUT_COOLDOWN_SECONDS = 60
SCALE_IN_COOLDOWN_SECONDS = 300  # a burst that ends is often followed by another
REQUESTS_METRIC = "ALBRequestCountPerTarget"
CPU_METRIC = "ECSServiceAverageCPUUtilization"
# The CloudWatch metric behind ALBRequestCountPerTarget, per target group (AWS/ApplicationELB).
REQUESTS_PER_TARGET = "RequestCountPerTarget"


@dataclass(frozen=True)
class WebAutoscalingArgs:
    cluster_name: pulumi.Input[str]
    service_name: pulumi.Input[str]
    load_balancer_arn_suffix: pulumi.Input[str]  # app/<alb>/<id>
    # targetgroup/<name>/<id> of the primary group, and of the alternate one (traffic shifting).
    target_group_arn_suffixes: Sequence[pulumi.Input[str]]
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


def requests_tracking(
    target: float, load_balancer: pulumi.Input[str], target_groups: Sequence[pulumi.Input[str]]
) -> TargetTracking:
    """Requests per task: the predefined metric of the one target group, or the sum of
    RequestCountPerTarget over both groups of a traffic-shifting deployment."""
    if len(target_groups) == 1:
        return tracking(REQUESTS_METRIC, target, pulumi.Output.concat(load_balancer, "/", target_groups[0]))
    ids = [f"group{index}" for index in range(len(target_groups))]
    queries: list[MetricQuery] = [
        {
            "id": query_id,
            "label": f"requests per target of target group {index}",
            "return_data": False,
            "metric_stat": {
                "metric": {
                    "namespace": ALB_NAMESPACE,
                    "metric_name": REQUESTS_PER_TARGET,
                    "dimensions": [
                        {"name": "TargetGroup", "value": group},
                        {"name": "LoadBalancer", "value": load_balancer},
                    ],
                },
                "stat": "Sum",
            },
        }
        for index, (query_id, group) in enumerate(zip(ids, target_groups, strict=True))
    ]
    total: MetricQuery = {
        "id": "requests",
        "label": "requests per target of the serving target group",
        "expression": " + ".join(ids),
        "return_data": True,
    }
    customized: CustomizedMetric = {"metrics": [*queries, total]}
    return {
        "target_value": target,
        "scale_out_cooldown": SCALE_OUT_COOLDOWN_SECONDS,
        "scale_in_cooldown": SCALE_IN_COOLDOWN_SECONDS,
        "customized_metric_specification": customized,
    }


class WebAutoscaling(pulumi.ComponentResource):
    target: aws.appautoscaling.Target
    policies: list[aws.appautoscaling.Policy]

    def __init__(
        self, name: str, args: WebAutoscalingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("djcelery:index:WebAutoscaling", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.target = service_scaling_target(
            f"{name}-target",
            args.cluster_name,
            args.service_name,
            args.scaling.min_count,
            args.scaling.max_count,
            child,
        )
        configurations = {
            "requests": requests_tracking(
                args.scaling.requests_per_task, args.load_balancer_arn_suffix, args.target_group_arn_suffixes
            ),
            "cpu": tracking(CPU_METRIC, args.scaling.cpu_percent),
        }
        self.policies = [
            scaling_policy(f"{name}-{key}", self.target, child, tracking=configuration)
            for key, configuration in configurations.items()
        ]
        self.register_outputs({"target_resource_id": self.target.resource_id})
