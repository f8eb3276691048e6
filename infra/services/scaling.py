"""The one way a service's task count is put under Application Auto Scaling, and its policies.

Both web and every worker pool scale an ECS service's desired count between a minimum and a
maximum (`RegisterScalableTarget`: ServiceNamespace `ecs`, ScalableDimension
`ecs:service:DesiredCount`, ResourceId `service/<cluster>/<service>`, as the Application Auto
Scaling API reference gives them); each policy acts on that target.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
from pulumi_aws.appautoscaling import (
    PolicyStepScalingPolicyConfigurationArgsDict as StepScaling,
)
from pulumi_aws.appautoscaling import (
    PolicyTargetTrackingScalingPolicyConfigurationArgsDict as TargetTracking,
)

SERVICE_NAMESPACE = "ecs"
SCALABLE_DIMENSION = "ecs:service:DesiredCount"


def service_scaling_target(
    name: str,
    cluster_name: pulumi.Input[str],
    service_name: pulumi.Input[str],
    min_count: int,
    max_count: int,
    opts: pulumi.ResourceOptions,
) -> aws.appautoscaling.Target:
    """The service's desired count, moved by its policies between `min_count` and `max_count`."""
    return aws.appautoscaling.Target(
        name,
        service_namespace=SERVICE_NAMESPACE,
        scalable_dimension=SCALABLE_DIMENSION,
        resource_id=pulumi.Output.concat("service/", cluster_name, "/", service_name),
        min_capacity=min_count,
        max_capacity=max_count,
        opts=opts,
    )


def scaling_policy(
    name: str,
    target: aws.appautoscaling.Target,
    opts: pulumi.ResourceOptions,
    *,
    step: StepScaling | None = None,
    tracking: TargetTracking | None = None,
) -> aws.appautoscaling.Policy:
    """A step scaling (an alarm triggers it) or a target-tracking policy on `target`."""
    if (step is None) == (tracking is None):
        raise ValueError(f"scaling policy {name}: give exactly one of step or tracking")
    return aws.appautoscaling.Policy(
        name,
        policy_type="StepScaling" if step else "TargetTrackingScaling",
        step_scaling_policy_configuration=step,
        target_tracking_scaling_policy_configuration=tracking,
        service_namespace=target.service_namespace,
        scalable_dimension=target.scalable_dimension,
        resource_id=target.resource_id,
        opts=opts,
    )
