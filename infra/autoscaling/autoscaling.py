"""Queue-length autoscaling of one worker pool's ECS service.

Five mechanisms, all acting on the metrics the queue-metrics publisher writes (names from its
schema, never retyped here):
- wake-up: a step policy on `WakeUpBacklog` brings an idle pool (desired 0) to
  ceil(backlog / target) workers within one short alarm period; target tracking cannot leave 0;
- fast scale-out: a step policy on metric math over the high-resolution backlog, desired count
  and oldest-message age adds the missing workers within one short alarm period: on a backlog
  jump ceil(backlog / target) - desired, on a latency breach at least one;
- target tracking on `BacklogPerWorker`, scale-out only: the backstop (AWS's own 3-minute alarm);
- scale-in: one worker fewer per cooldown, only after the backlog has stayed low for the quiet
  time, never the last worker while anything is waiting or in flight, never below min (and ECS
  never stops a worker that protects itself while it runs tasks: app/core/task_protection.py);
- alarms for people: oldest message too old, publisher silent (missing data breaches), and
  `taskSeconds` off from the measured task run time by more than 2x (calibration).
The numbers come from `policies.policy_set`, which the simulator runs too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from pulumi_aws.appautoscaling import (
    PolicyStepScalingPolicyConfigurationArgsDict as StepScaling,
)
from pulumi_aws.appautoscaling import (
    PolicyStepScalingPolicyConfigurationStepAdjustmentArgsDict as StepArgs,
)
from pulumi_aws.appautoscaling import (
    PolicyTargetTrackingScalingPolicyConfigurationArgsDict as TargetTracking,
)

from infra.autoscaling.policies import (
    MetricAlarmRule,
    PolicySet,
    ScalingParameters,
    StepAdjustment,
    policy_set,
)
from infra.observability.metrics import Expression, queue_metric
from queuemetrics import schema

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
    calibration_alarm: aws.cloudwatch.MetricAlarm

    def __init__(
        self, name: str, args: WorkerAutoscalingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("djcelery:index:WorkerAutoscaling", name, None, opts)
        self._name, self._args = name, args
        self.policies = policy_set(args.parameters)
        self.target = aws.appautoscaling.Target(
            f"{name}-target",
            service_namespace="ecs",
            scalable_dimension=_SCALABLE_DIMENSION,
            resource_id=pulumi.Output.concat("service/", args.cluster_name, "/", args.service_name),
            min_capacity=self.policies.min_workers,
            max_capacity=self.policies.max_workers,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self._backlog_tracking()
        self._wake_up()
        self._fast_scale_out()
        self._scale_in()
        self.queue_age_alarm = self._metric_alarm(
            "queue-age",
            self.policies.queue_age_alarm,
            list(args.alarm_actions),
            f"A message of pool {args.pool} has waited more than "
            f"{self.policies.queue_age_alarm.threshold:g} s.",
        )
        self.publisher_silent_alarm = self._metric_alarm(
            "publisher-silent",
            self.policies.publisher_silent_alarm,
            list(args.alarm_actions),
            f"No queue metrics for pool {args.pool}: the publisher beside Beat is down or cannot read "
            "the broker. Autoscaling is blind until it is back.",
        )
        self.calibration_alarm = self._calibration_alarm()
        self.register_outputs({"target_resource_id": self.target.resource_id})

    def _backlog_tracking(self) -> None:
        """Target tracking on the backlog per worker; scale-in is the step policy's job (it waits
        for the quiet time and goes one at a time)."""
        dimensions = schema.dimensions(schema.BACKLOG_PER_WORKER, self._args.pool)
        configuration: TargetTracking = {
            "target_value": self.policies.target_backlog_per_worker,
            "disable_scale_in": True,
            "scale_out_cooldown": self.policies.scale_out_cooldown_seconds,
            "customized_metric_specification": {
                "namespace": self._args.metric_namespace,
                "metric_name": schema.BACKLOG_PER_WORKER.name,
                "statistic": "Average",
                "dimensions": [{"name": key, "value": value} for key, value in dimensions.items()],
            },
        }
        self._policy("backlog-tracking", tracking=configuration)

    def _wake_up(self) -> None:
        policies = self.policies
        wake_up_policy = self._policy(
            "wake-up",
            step={
                "adjustment_type": "ExactCapacity",
                "metric_aggregation_type": policies.wake_up_alarm.statistic,
                "cooldown": policies.scale_out_cooldown_seconds,
                "step_adjustments": [_step(step) for step in policies.wake_up_steps],
            },
        )
        self._metric_alarm(
            "wake-up",
            policies.wake_up_alarm,
            [wake_up_policy.arn],
            f"Pool {self._args.pool} has work and no workers: start ceil(backlog / "
            f"{policies.target_backlog_per_worker:g}) workers.",
        )

    def _fast_scale_out(self) -> None:
        """Add the missing workers within one high-resolution period of a backlog jump or a latency
        breach (target tracking's alarm needs three minutes)."""
        policies, args = self.policies, self._args
        rule = policies.fast_scale_out
        policy = self._policy(
            "fast-scale-out",
            step={
                "adjustment_type": "ChangeInCapacity",
                "metric_aggregation_type": rule.statistic,
                "cooldown": policies.scale_out_cooldown_seconds,
                "step_adjustments": [_step(step) for step in policies.fast_scale_out_steps],
            },
        )
        inputs = {
            query_id: queue_metric(
                args.metric_namespace, metric, rule.statistic, label, args.pool, period=rule.period_seconds
            )
            for query_id, metric, label in (
                ("backlog", schema.POOL_BACKLOG, "backlog"),
                ("desired", schema.POOL_DESIRED_WORKERS, "desired workers"),
                ("age", schema.POOL_OLDEST_AGE, "oldest message age"),
            )
        }
        missing = Expression(rule.expression(), "workers missing", inputs, rule.steps())
        aws.cloudwatch.MetricAlarm(
            f"{self._name}-fast-scale-out",
            alarm_description=(
                f"Pool {args.pool} is short of workers: the backlog needs more than the desired count "
                f"at {policies.target_backlog_per_worker:g} messages each, or a message has waited "
                f"more than {rule.latency_seconds:g} s. Adds the missing workers."
            ),
            metric_queries=missing.alarm_queries(),
            comparison_operator=rule.comparison,
            threshold=rule.threshold,
            evaluation_periods=rule.evaluation_periods,
            datapoints_to_alarm=rule.evaluation_periods,
            treat_missing_data=rule.treat_missing_data,
            alarm_actions=[policy.arn],
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _calibration_alarm(self) -> aws.cloudwatch.MetricAlarm:
        """People hear when the pool's `taskSeconds` is off from the measured run time by over 2x:
        the backlog per worker the policies aim for is then off by as much."""
        rule, args = self.policies.calibration, self._args
        inputs = {
            query_id: queue_metric(
                args.metric_namespace,
                schema.POOL_TASK_RUN_SECONDS,
                statistic,
                label,
                args.pool,
                period=rule.period_seconds,
            )
            for query_id, statistic, label in (
                ("run", "Average", "measured task run time"),
                ("tasks", "SampleCount", "tasks measured"),
            )
        }
        off_by = Expression(rule.expression(), "times taskSeconds is off", inputs, rule.steps())
        actions = list(args.alarm_actions)
        return aws.cloudwatch.MetricAlarm(
            f"{self._name}-calibration",
            alarm_description=(
                f"Tasks of pool {args.pool} take more than {rule.threshold:g}x longer or shorter than "
                f"its taskSeconds ({rule.configured_task_seconds:g} s) says, measured over "
                f"{rule.period_seconds // 60} min: set taskSeconds to the measured PoolTaskRunSeconds "
                "(docs/autoscaling.md, calibration)."
            ),
            metric_queries=off_by.alarm_queries(),
            comparison_operator=rule.comparison,
            threshold=rule.threshold,
            evaluation_periods=rule.evaluation_periods,
            datapoints_to_alarm=rule.evaluation_periods,
            treat_missing_data=rule.treat_missing_data,
            alarm_actions=actions,
            ok_actions=actions,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _scale_in(self) -> None:
        """One worker fewer when the workers left would each hold at most half the target."""
        scale_in_policy = self._policy(
            "scale-in",
            step={
                "adjustment_type": "ChangeInCapacity",
                "cooldown": self.policies.scale_in_cooldown_seconds,
                "step_adjustments": [_step(StepAdjustment(lower=None, upper=0, adjustment=-1))],
            },
        )
        rule, args = self.policies.scale_in, self._args
        backlog = queue_metric(
            args.metric_namespace,
            schema.POOL_BACKLOG,
            rule.backlog_statistic,
            "backlog",
            args.pool,
            period=rule.period_seconds,
        )
        desired = queue_metric(
            args.metric_namespace,
            schema.POOL_DESIRED_WORKERS,
            rule.desired_statistic,
            "desired workers",
            args.pool,
            period=rule.period_seconds,
        )
        aws.cloudwatch.MetricAlarm(
            f"{self._name}-scale-in",
            alarm_description=(
                f"Pool {args.pool} could lose a worker: for {rule.evaluation_periods} min the remaining "
                f"workers would each hold at most {rule.allowed_backlog_per_remaining_worker:g} messages."
            ),
            metric_queries=[
                backlog.alarm_query("backlog"),
                desired.alarm_query("desired"),
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
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _policy(
        self, suffix: str, *, step: StepScaling | None = None, tracking: TargetTracking | None = None
    ) -> aws.appautoscaling.Policy:
        """A scaling policy on the pool's scalable target: step scaling or target tracking."""
        return aws.appautoscaling.Policy(
            f"{self._name}-{suffix}",
            policy_type="StepScaling" if step else "TargetTrackingScaling",
            step_scaling_policy_configuration=step,
            target_tracking_scaling_policy_configuration=tracking,
            service_namespace=self.target.service_namespace,
            scalable_dimension=self.target.scalable_dimension,
            resource_id=self.target.resource_id,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _metric_alarm(
        self, suffix: str, rule: MetricAlarmRule, actions: list[pulumi.Input[str]], description: str
    ) -> aws.cloudwatch.MetricAlarm:
        return aws.cloudwatch.MetricAlarm(
            f"{self._name}-{suffix}",
            alarm_description=description,
            namespace=self._args.metric_namespace,
            metric_name=rule.metric.name,
            dimensions=schema.dimensions(rule.metric, self._args.pool),
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


def _step(step: StepAdjustment) -> StepArgs:
    # The provider takes the bounds as strings.
    return {
        "metric_interval_lower_bound": None if step.lower is None else f"{step.lower:g}",
        "metric_interval_upper_bound": None if step.upper is None else f"{step.upper:g}",
        "scaling_adjustment": step.adjustment,
    }
