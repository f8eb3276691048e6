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
The numbers come from `policies.policy_set`, which the simulator (testkit) runs too.
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

from infra.cloudwatch.alarm import AlarmSpec, metric_alarm
from infra.cloudwatch.metrics import Expression, Metric, queue_metric
from infra.cloudwatch.numbers import math_number
from infra.services.scaling import scaling_policy, service_scaling_target
from infra.workers.policies import MetricAlarmRule, PolicySet, StepAdjustment
from queuemetrics import schema


@dataclass(frozen=True)
class WorkerAutoscalingArgs:
    cluster_name: pulumi.Input[str]
    service_name: pulumi.Input[str]
    pool: str  # the publisher's Pool dimension value
    policies: PolicySet  # the pool's (WorkerPoolConfig.policies)
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
        self.policies = args.policies
        self.target = service_scaling_target(
            f"{name}-target",
            args.cluster_name,
            args.service_name,
            self.policies.min_count,
            self.policies.max_count,
            self._child,
        )
        self._backlog_tracking()
        self._wake_up()
        self._fast_scale_out()
        self._scale_in()
        actions = list(args.alarm_actions)
        self.queue_age_alarm = self._alarm(
            "queue-age",
            self._metric_alarm_spec(
                self.policies.queue_age_alarm,
                f"A message of pool {args.pool} has waited more than "
                f"{self.policies.queue_age_alarm.threshold:g} s.",
            ),
            actions,
        )
        self.publisher_silent_alarm = self._alarm(
            "publisher-silent",
            self._metric_alarm_spec(
                self.policies.publisher_silent_alarm,
                f"No queue metrics for pool {args.pool}: the publisher beside Beat is down or cannot "
                "read the broker. Autoscaling is blind until it is back.",
            ),
            actions,
        )
        self.calibration_alarm = self._calibration_alarm()
        self.register_outputs({"target_resource_id": self.target.resource_id})

    @property
    def _child(self) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self)

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
        spec = self._metric_alarm_spec(
            policies.wake_up_alarm,
            f"Pool {self._args.pool} has work and no workers: start ceil(backlog / "
            f"{policies.target_backlog_per_worker:g}) workers.",
        )
        self._alarm("wake-up", spec, [wake_up_policy.arn], ok_actions=False)

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
            query_id: self._pool_metric(metric, rule.statistic, label, rule.period_seconds)
            for query_id, metric, label in (
                ("backlog", schema.POOL_BACKLOG, "backlog"),
                ("desired", schema.POOL_DESIRED_WORKERS, "desired workers"),
                ("age", schema.POOL_OLDEST_AGE, "oldest message age"),
            )
        }
        spec = AlarmSpec(
            description=(
                f"Pool {args.pool} is short of workers: the backlog needs more than the desired count "
                f"at {policies.target_backlog_per_worker:g} messages each, or a message has waited "
                f"more than {rule.latency_seconds:g} s. Adds the missing workers."
            ),
            watches=Expression(rule.expression(), "workers missing", inputs, rule.steps()),
            comparison=rule.comparison,
            threshold=rule.threshold,
            evaluation_periods=rule.evaluation_periods,
            datapoints_to_alarm=rule.evaluation_periods,
            treat_missing_data=rule.treat_missing_data,
        )
        self._alarm("fast-scale-out", spec, [policy.arn], ok_actions=False)

    def _calibration_alarm(self) -> aws.cloudwatch.MetricAlarm:
        """People hear when the pool's `taskSeconds` is off from the measured run time by over 2x:
        the backlog per worker the policies aim for is then off by as much."""
        rule, args = self.policies.calibration, self._args
        inputs = {
            query_id: self._pool_metric(schema.POOL_TASK_RUN_SECONDS, statistic, label, rule.period_seconds)
            for query_id, statistic, label in (
                ("run", "Average", "measured task run time"),
                ("tasks", "SampleCount", "tasks measured"),
            )
        }
        spec = AlarmSpec(
            description=(
                f"Tasks of pool {args.pool} take more than {rule.threshold:g}x longer or shorter than "
                f"its taskSeconds ({rule.configured_task_seconds:g} s) says, measured over "
                f"{rule.period_seconds // 60} min: set taskSeconds to the measured PoolTaskRunSeconds "
                "(docs/autoscaling.md, calibration)."
            ),
            watches=Expression(rule.expression(), "times taskSeconds is off", inputs, rule.steps()),
            comparison=rule.comparison,
            threshold=rule.threshold,
            evaluation_periods=rule.evaluation_periods,
            datapoints_to_alarm=rule.evaluation_periods,
            treat_missing_data=rule.treat_missing_data,
        )
        return self._alarm("calibration", spec, list(args.alarm_actions))

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
        inputs = {
            "backlog": self._pool_metric(
                schema.POOL_BACKLOG, rule.backlog_statistic, "backlog", rule.period_seconds
            ),
            "desired": self._pool_metric(
                schema.POOL_DESIRED_WORKERS, rule.desired_statistic, "desired workers", rule.period_seconds
            ),
        }
        spec = AlarmSpec(
            description=(
                f"Pool {args.pool} could lose a worker: for {rule.evaluation_periods} min the remaining "
                f"workers would each hold at most {rule.allowed_backlog_per_remaining_worker:g} messages."
            ),
            watches=Expression(
                rule.expression("backlog", "desired"), "backlog beyond what one worker fewer may hold", inputs
            ),
            comparison=rule.comparison,
            threshold=rule.threshold,
            evaluation_periods=rule.evaluation_periods,
            datapoints_to_alarm=rule.evaluation_periods,
            treat_missing_data=rule.treat_missing_data,
        )
        self._alarm("scale-in", spec, [scale_in_policy.arn], ok_actions=False)

    def _policy(
        self, suffix: str, *, step: StepScaling | None = None, tracking: TargetTracking | None = None
    ) -> aws.appautoscaling.Policy:
        return scaling_policy(
            f"{self._name}-{suffix}", self.target, self._child, step=step, tracking=tracking
        )

    def _pool_metric(
        self, metric: schema.MetricDefinition, statistic: str, label: str, period: int
    ) -> Metric:
        return queue_metric(
            self._args.metric_namespace, metric, statistic, label, self._args.pool, period=period
        )

    def _metric_alarm_spec(self, rule: MetricAlarmRule, description: str) -> AlarmSpec:
        return AlarmSpec(
            description=description,
            watches=self._pool_metric(rule.metric, rule.statistic, rule.metric.name, rule.period_seconds),
            comparison=rule.comparison,
            threshold=rule.threshold,
            evaluation_periods=rule.evaluation_periods,
            datapoints_to_alarm=rule.datapoints_to_alarm,
            treat_missing_data=rule.treat_missing_data,
        )

    def _alarm(
        self, suffix: str, spec: AlarmSpec, actions: Sequence[pulumi.Input[str]], *, ok_actions: bool = True
    ) -> aws.cloudwatch.MetricAlarm:
        return metric_alarm(f"{self._name}-{suffix}", spec, actions, self._child, ok_actions=ok_actions)


def _step(step: StepAdjustment) -> StepArgs:
    # The provider takes the bounds as strings.
    return {
        "metric_interval_lower_bound": None if step.lower is None else math_number(step.lower),
        "metric_interval_upper_bound": None if step.upper is None else math_number(step.upper),
        "scaling_adjustment": step.adjustment,
    }
