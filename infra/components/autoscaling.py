"""Queue-length autoscaling of one worker pool's ECS service.

Four mechanisms, all acting on the metrics the queue-metrics publisher writes (names from its
schema, never retyped here):
- wake-up: a step policy on `WakeUpBacklog` brings an idle pool (desired 0) to
  ceil(backlog / target) workers within one short alarm period; target tracking cannot leave 0;
- target tracking on `BacklogPerWorker`, scale-out only: proportional growth while busy;
- scale-in: one worker fewer per cooldown, only after the backlog has stayed low for the quiet
  time, never the last worker while anything is waiting or in flight, never below min;
- alarms for people: oldest message too old, and publisher silent (missing data breaches).
The numbers come from `infra.scaling.policy_set`, which the simulator runs too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.scaling import MetricAlarmRule, PolicySet, ScalingParameters, StepAdjustment, policy_set, schema

_SCALABLE_DIMENSION = "ecs:service:DesiredCount"


@dataclass(frozen=True)
class WorkerAutoscalingArgs:
    cluster_name: pulumi.Input[str]
    service_name: pulumi.Input[str]
    pool: str  # the publisher's Pool dimension value
    parameters: ScalingParameters
    metric_namespace: str
    # Notified when the oldest message is too old or the publisher goes silent (e.g. SNS topics).
    alarm_actions: Sequence[pulumi.Input[str]] = ()


class WorkerAutoscaling(pulumi.ComponentResource):
    policies: PolicySet
    target: aws.appautoscaling.Target
    queue_age_alarm: aws.cloudwatch.MetricAlarm
    publisher_silent_alarm: aws.cloudwatch.MetricAlarm

    def __init__(
        self, name: str, args: WorkerAutoscalingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("djcelery:index:WorkerAutoscaling", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.policies = policies = policy_set(args.parameters)
        dimensions = schema.dimensions(schema.BACKLOG_PER_WORKER, args.pool)

        self.target = target = aws.appautoscaling.Target(
            f"{name}-target",
            service_namespace="ecs",
            scalable_dimension=_SCALABLE_DIMENSION,
            resource_id=pulumi.Output.concat("service/", args.cluster_name, "/", args.service_name),
            min_capacity=policies.min_workers,
            max_capacity=policies.max_workers,
            opts=child,
        )
        on_target: dict[str, Any] = {
            "service_namespace": target.service_namespace,
            "scalable_dimension": target.scalable_dimension,
            "resource_id": target.resource_id,
        }

        aws.appautoscaling.Policy(
            f"{name}-backlog-tracking",
            policy_type="TargetTrackingScaling",
            target_tracking_scaling_policy_configuration={
                "target_value": policies.target_backlog_per_worker,
                # Scale-in is the step policy's job: it waits for the quiet time and goes one at a time.
                "disable_scale_in": True,
                "scale_out_cooldown": policies.scale_out_cooldown_seconds,
                "customized_metric_specification": {
                    "namespace": args.metric_namespace,
                    "metric_name": schema.BACKLOG_PER_WORKER.name,
                    "statistic": "Average",
                    "dimensions": [{"name": key, "value": value} for key, value in dimensions.items()],
                },
            },
            opts=child,
            **on_target,
        )

        wake_up_policy = aws.appautoscaling.Policy(
            f"{name}-wake-up",
            policy_type="StepScaling",
            step_scaling_policy_configuration={
                "adjustment_type": "ExactCapacity",
                "metric_aggregation_type": policies.wake_up_alarm.statistic,
                "cooldown": policies.scale_out_cooldown_seconds,
                "step_adjustments": [_step(step) for step in policies.wake_up_steps],
            },
            opts=child,
            **on_target,
        )
        self._metric_alarm(
            f"{name}-wake-up",
            args,
            policies.wake_up_alarm,
            [wake_up_policy.arn],
            f"Pool {args.pool} has work and no workers: start ceil(backlog / "
            f"{policies.target_backlog_per_worker:g}) workers.",
        )

        scale_in_policy = aws.appautoscaling.Policy(
            f"{name}-scale-in",
            policy_type="StepScaling",
            step_scaling_policy_configuration={
                "adjustment_type": "ChangeInCapacity",
                "cooldown": policies.scale_in_cooldown_seconds,
                "step_adjustments": [_step(StepAdjustment(lower=None, upper=0, adjustment=-1))],
            },
            opts=child,
            **on_target,
        )
        rule = policies.scale_in
        aws.cloudwatch.MetricAlarm(
            f"{name}-scale-in",
            alarm_description=(
                f"Pool {args.pool} could lose a worker: for {rule.evaluation_periods} min the remaining "
                f"workers would each hold at most {rule.allowed_backlog_per_remaining_worker:g} messages."
            ),
            metric_queries=[
                _metric_query(
                    "backlog", args, schema.POOL_BACKLOG, rule.backlog_statistic, rule.period_seconds
                ),
                _metric_query(
                    "desired", args, schema.POOL_DESIRED_WORKERS, rule.desired_statistic, rule.period_seconds
                ),
                {
                    "id": "excess",
                    "expression": rule.expression("backlog", "desired"),
                    "label": "backlog beyond what one worker fewer may hold",
                    "return_data": True,
                },
            ],
            comparison_operator=rule.comparison,
            threshold=rule.threshold,
            evaluation_periods=rule.evaluation_periods,
            datapoints_to_alarm=rule.evaluation_periods,
            treat_missing_data=rule.treat_missing_data,
            alarm_actions=[scale_in_policy.arn],
            opts=child,
        )

        self.queue_age_alarm = self._metric_alarm(
            f"{name}-queue-age",
            args,
            policies.queue_age_alarm,
            list(args.alarm_actions),
            f"A message of pool {args.pool} has waited more than {policies.queue_age_alarm.threshold:g} s.",
        )
        self.publisher_silent_alarm = self._metric_alarm(
            f"{name}-publisher-silent",
            args,
            policies.publisher_silent_alarm,
            list(args.alarm_actions),
            f"No queue metrics for pool {args.pool}: the publisher beside Beat is down or cannot read "
            "the broker. Autoscaling is blind until it is back.",
        )
        self.register_outputs({"target_resource_id": target.resource_id})

    def _metric_alarm(
        self,
        name: str,
        args: WorkerAutoscalingArgs,
        rule: MetricAlarmRule,
        actions: list[pulumi.Input[str]],
        description: str,
    ) -> aws.cloudwatch.MetricAlarm:
        return aws.cloudwatch.MetricAlarm(
            name,
            alarm_description=description,
            namespace=args.metric_namespace,
            metric_name=rule.metric.name,
            dimensions=schema.dimensions(rule.metric, args.pool),
            statistic=rule.statistic,
            period=rule.period_seconds,
            evaluation_periods=rule.evaluation_periods,
            datapoints_to_alarm=rule.datapoints_to_alarm,
            comparison_operator=rule.comparison,
            threshold=rule.threshold,
            treat_missing_data=rule.treat_missing_data,
            alarm_actions=actions,
            # People also want to know when it is over; scaling policies act on ALARM only.
            ok_actions=actions if rule.metric is not schema.WAKE_UP_BACKLOG else [],
            opts=pulumi.ResourceOptions(parent=self),
        )


def publisher_policy_document(
    namespace: str, cluster_name: str, region: str, account_id: str, partition: str = "aws"
) -> dict[str, Any]:
    """The queue-metrics publisher's IAM permissions, and nothing else.

    PutMetricData has no resource ARN; the `cloudwatch:namespace` condition confines it to the
    stack's namespace. DescribeServices is limited to the services of the stack's cluster.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PublishQueueMetrics",
                "Effect": "Allow",
                "Action": "cloudwatch:PutMetricData",
                "Resource": "*",
                "Condition": {"StringEquals": {"cloudwatch:namespace": namespace}},
            },
            {
                "Sid": "ReadWorkerCounts",
                "Effect": "Allow",
                "Action": "ecs:DescribeServices",
                "Resource": f"arn:{partition}:ecs:{region}:{account_id}:service/{cluster_name}/*",
            },
        ],
    }


def _step(step: StepAdjustment) -> dict[str, Any]:
    # The provider takes the bounds as strings.
    return {
        "metric_interval_lower_bound": None if step.lower is None else f"{step.lower:g}",
        "metric_interval_upper_bound": None if step.upper is None else f"{step.upper:g}",
        "scaling_adjustment": step.adjustment,
    }


def _metric_query(
    query_id: str,
    args: WorkerAutoscalingArgs,
    metric: Any,
    statistic: str,
    period: int,
) -> dict[str, Any]:
    return {
        "id": query_id,
        "return_data": False,
        "metric": {
            "namespace": args.metric_namespace,
            "metric_name": metric.name,
            "dimensions": schema.dimensions(metric, args.pool),
            "stat": statistic,
            "period": period,
        },
    }
