"""Worker autoscaling on Celery queue length: the math and the policy set.

Everything here is pure. `policy_set()` turns a pool's `PoolScaling` into the exact values the
`WorkerAutoscaling` component deploys (target, step boundaries, alarm periods, cooldowns); the
simulator (testkit/scaling_simulator.py) runs that same policy set against a queue in discrete
time, so tests and benchmarks see what the stack will do. Metric names come from the publisher's own schema
(app/queuemetrics/schema.py, the installed `queuemetrics` package).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from infra.cloudwatch.numbers import math_number
from queuemetrics import schema

# A stated assumption, not a measurement: image pull, ENI attachment and container start of a
# small Fargate task. Reaction times below add it to the decision time.
FARGATE_STARTUP_SECONDS = 60
# Application Auto Scaling target tracking evaluates 1-minute datapoints and scales out after
# 3 consecutive breaching ones (the alarm it creates and manages; not configurable).
TARGET_TRACKING_PERIOD_SECONDS = 60
TARGET_TRACKING_SCALE_OUT_DATAPOINTS = 3
# CloudWatch repeats Auto Scaling actions while an alarm stays in ALARM (other actions fire once).
SCALING_ALARM_PERIOD_SECONDS = 60
# Application Auto Scaling quota: step adjustments per step scaling policy.
MAX_STEP_ADJUSTMENTS = 20
# Scale in only if the workers that remain would each hold at most this share of the target:
# the gap to the scale-out point (a full target) keeps the two policies from flapping.
SCALE_IN_LOAD_FRACTION = 0.5
# Periods a CloudWatch alarm accepts: 10, 20, 30 (high-resolution metrics) or a multiple of 60.
_SUB_MINUTE_PERIODS = (10, 20, 30)
# The wake-up alarm fires on one waiting message; its steps are measured from this threshold.
WAKE_UP_THRESHOLD = 1
# The publisher-silent alarm waits at least this long: a Beat redeploy stops the sidecar briefly.
PUBLISHER_SILENT_SECONDS = 300
# The fast scale-out alarm fires when at least one worker is missing; its steps count from there.
FAST_SCALE_OUT_THRESHOLD = 1
# Calibration: the configured taskSeconds is checked against the mean measured over this period,
# once the pool finished at least this many tasks in it; off by more than this factor, people hear.
CALIBRATION_PERIOD_SECONDS = 30 * 60
CALIBRATION_MIN_SAMPLES = 30
CALIBRATION_FACTOR = 2.0


@dataclass(frozen=True)
class ScalingTimings:
    """The autoscaling timings a stack sets once for every pool."""

    publish_interval_seconds: int  # how often the publisher writes the queue metrics
    scale_in_quiet_minutes: int  # backlog must stay low this long before the first scale-in
    scale_in_cooldown_seconds: int  # then one worker less per cooldown
    scale_out_cooldown_seconds: int
    queue_age_alarm_seconds: int


@dataclass(frozen=True)
class PoolScaling:
    """How one worker pool scales: its own numbers (the names of its `workerPools` fields) and the
    stack's timings. The stack config checks the ranges (infra/workers/config.py)."""

    min_count: int
    max_count: int
    concurrency: int  # celery --concurrency of each worker task
    target_latency_seconds: float  # how long a new message may acceptably wait
    task_seconds: float  # typical task duration
    timings: ScalingTimings

    @property
    def target_backlog_per_worker(self) -> float:
        return target_backlog_per_worker(self.target_latency_seconds, self.task_seconds, self.concurrency)

    def too_short_for_one_message(self) -> str:
        """Why a target below one message per worker cannot scale (a latency the pool cannot meet)."""
        return (
            f"targetLatencySeconds {self.target_latency_seconds:g} is too short for tasks of "
            f"{self.task_seconds:g} s at concurrency {self.concurrency}: a worker could not hold even "
            "one message; raise the latency or the concurrency"
        )


def target_backlog_per_worker(target_latency_seconds: float, task_seconds: float, concurrency: int) -> float:
    """Messages one worker may hold so that the last of them starts within the target latency.

    A worker runs `concurrency` tasks at a time, so it clears a backlog of B in
    B x task_seconds / concurrency seconds (Copilot's queue_delay, times concurrency).
    """
    return concurrency * target_latency_seconds / task_seconds


def alarm_period_seconds(publish_interval_seconds: int) -> int:
    """The shortest alarm period that holds at least one datapoint of every publish interval."""
    for period in _SUB_MINUTE_PERIODS:
        if publish_interval_seconds <= period:
            return period
    return math.ceil(publish_interval_seconds / 60) * 60


@dataclass(frozen=True)
class StepAdjustment:
    """A step of a step scaling policy; bounds are relative to the alarm threshold, None = open."""

    lower: float | None
    upper: float | None
    adjustment: int

    def contains(self, distance: float) -> bool:
        # Above the threshold, AWS treats the lower bound as inclusive and the upper as exclusive.
        return (self.lower is None or distance >= self.lower) and (
            self.upper is None or distance < self.upper
        )


def wake_up_steps(target: float, max_count: int) -> tuple[StepAdjustment, ...]:
    """ExactCapacity steps that start ceil(backlog / target) workers at once, from zero.

    For an integer backlog B, ceil(B / target) == k exactly when
    floor((k-1) x target) <= B - WAKE_UP_THRESHOLD < floor(k x target), given target >= 1.
    Capped at `max_count` and at the 20-step quota; target tracking takes it from there.
    """
    top = min(max_count, MAX_STEP_ADJUSTMENTS)
    bounds = [math.floor(k * target) for k in range(top)]
    return tuple(
        StepAdjustment(
            lower=bounds[k - 1],
            upper=bounds[k] if k < top else None,
            adjustment=k,
        )
        for k in range(1, top + 1)
    )


@dataclass(frozen=True)
class MetricAlarmRule:
    """A CloudWatch alarm on one published metric of the pool."""

    metric: schema.MetricDefinition
    statistic: str
    period_seconds: int
    evaluation_periods: int
    datapoints_to_alarm: int
    comparison: str
    threshold: float
    treat_missing_data: str

    def breaches(self, value: float) -> bool:
        return _COMPARISONS[self.comparison](value, self.threshold)


@dataclass(frozen=True)
class ScaleInRule:
    """The scale-in alarm: metric math on backlog and desired workers, breaching at <= 0.

    excess = backlog - allowed x (desired - 1) while desired > min, else 1 (never breaching):
    a worker goes only when the ones left would each hold at most `allowed` messages; the last
    one goes only when the backlog (waiting + in flight) is 0; nothing happens at min.
    """

    min_count: int
    allowed_backlog_per_remaining_worker: float
    period_seconds: int
    evaluation_periods: int
    backlog_statistic: str = "Maximum"  # any busy moment in the period blocks scale-in
    desired_statistic: str = "Minimum"
    threshold: float = 0
    comparison: str = "LessThanOrEqualToThreshold"
    treat_missing_data: str = "notBreaching"  # a silent publisher must not shrink the pool

    def expression(self, backlog_id: str, desired_id: str) -> str:
        allowed = math_number(self.allowed_backlog_per_remaining_worker)
        return f"IF({desired_id} > {self.min_count}, {backlog_id} - {allowed} * ({desired_id} - 1), 1)"

    def excess(self, backlog: float, desired: float) -> float:
        """The value of `expression` for one period (what the simulator evaluates)."""
        if desired > self.min_count:
            return backlog - self.allowed_backlog_per_remaining_worker * (desired - 1)
        return 1

    def breaches(self, backlog: float, desired: float) -> bool:
        return self.excess(backlog, desired) <= self.threshold


@dataclass(frozen=True)
class FastScaleOutRule:
    """The fast scale-out alarm: workers missing, from the high-resolution metrics of one period.

    missing = ceil(backlog / target) - desired: the count target tracking would set, minus what
    the pool has (a backlog jump); at least 1 while the oldest message has waited longer than the
    acceptable latency (a latency breach, e.g. tasks slower than `taskSeconds` says). Only for a
    pool with workers: the wake-up policy brings a pool from zero. Steps add that many workers.
    """

    target_backlog_per_worker: float
    latency_seconds: float
    period_seconds: int
    evaluation_periods: int = 1
    statistic: str = "Maximum"  # of backlog, desired count and age over the period
    threshold: float = FAST_SCALE_OUT_THRESHOLD
    comparison: str = "GreaterThanOrEqualToThreshold"
    treat_missing_data: str = "notBreaching"  # a silent publisher adds nobody

    def steps(self) -> dict[str, str]:
        return {"gap": f"CEIL(backlog / {math_number(self.target_backlog_per_worker)}) - desired"}

    def expression(self) -> str:
        # FILL: no age datapoint (no waiting message carries sent_at) is not a latency breach.
        return (
            f"IF(desired > 0, IF(FILL(age, 0) > {math_number(self.latency_seconds)}, "
            "IF(gap > 1, gap, 1), gap), 0)"
        )

    def missing(self, backlog: float, desired: float, age: float | None) -> float:
        """The value of `expression` for one period (what the simulator evaluates)."""
        if desired <= 0:
            return 0
        gap = math.ceil(backlog / self.target_backlog_per_worker) - desired
        return max(gap, 1) if (age or 0) > self.latency_seconds else gap

    def breaches(self, backlog: float, desired: float, age: float | None) -> bool:
        return _COMPARISONS[self.comparison](self.missing(backlog, desired, age), self.threshold)


def fast_scale_out_steps(max_count: int) -> tuple[StepAdjustment, ...]:
    """ChangeInCapacity steps: k workers missing add k (the last step adds the rest, open-ended).

    `missing` is an integer, so step k covers [k, k + 1), i.e. [k - 1, k) above the threshold of 1.
    """
    top = min(max(max_count - 1, 1), MAX_STEP_ADJUSTMENTS)
    return tuple(
        StepAdjustment(
            lower=k - FAST_SCALE_OUT_THRESHOLD,
            upper=k + 1 - FAST_SCALE_OUT_THRESHOLD if k < top else None,
            adjustment=k,
        )
        for k in range(1, top + 1)
    )


@dataclass(frozen=True)
class CalibrationRule:
    """The calibration alarm: the configured task duration against the measured mean run time.

    off_by = measured / configured, or its inverse when the tasks are faster: how many times the
    configured `taskSeconds` is off. Periods with fewer than `min_samples` tasks count as 0.
    """

    configured_task_seconds: float
    period_seconds: int = CALIBRATION_PERIOD_SECONDS
    min_samples: int = CALIBRATION_MIN_SAMPLES
    threshold: float = CALIBRATION_FACTOR
    evaluation_periods: int = 1
    comparison: str = "GreaterThanThreshold"
    treat_missing_data: str = "notBreaching"  # an idle pool proves nothing either way

    def steps(self) -> dict[str, str]:
        configured = math_number(self.configured_task_seconds)
        return {"offby": f"IF(run > {configured}, run / {configured}, {configured} / run)"}

    def expression(self) -> str:
        return f"IF(tasks >= {self.min_samples}, offby, 0)"

    def off_by(self, measured_mean: float) -> float:
        configured = self.configured_task_seconds
        return measured_mean / configured if measured_mean > configured else configured / measured_mean

    def breaches(self, measured_mean: float, tasks: int) -> bool:
        value = self.off_by(measured_mean) if tasks >= self.min_samples else 0
        return _COMPARISONS[self.comparison](value, self.threshold)


@dataclass(frozen=True)
class PolicySet:
    """Everything `WorkerAutoscaling` deploys for one pool, as plain values."""

    min_count: int
    max_count: int
    target_backlog_per_worker: float
    scale_out_cooldown_seconds: int
    wake_up_alarm: MetricAlarmRule
    wake_up_steps: tuple[StepAdjustment, ...]
    fast_scale_out: FastScaleOutRule
    fast_scale_out_steps: tuple[StepAdjustment, ...]
    scale_in: ScaleInRule
    scale_in_cooldown_seconds: int
    queue_age_alarm: MetricAlarmRule
    publisher_silent_alarm: MetricAlarmRule
    calibration: CalibrationRule


def policy_set(scaling: PoolScaling) -> PolicySet:
    target, timings = scaling.target_backlog_per_worker, scaling.timings
    fast_period = alarm_period_seconds(timings.publish_interval_seconds)
    silent_period = SCALING_ALARM_PERIOD_SECONDS
    silent_seconds = max(PUBLISHER_SILENT_SECONDS, 3 * timings.publish_interval_seconds)
    return PolicySet(
        min_count=scaling.min_count,
        max_count=scaling.max_count,
        target_backlog_per_worker=target,
        scale_out_cooldown_seconds=timings.scale_out_cooldown_seconds,
        wake_up_alarm=MetricAlarmRule(
            metric=schema.WAKE_UP_BACKLOG,
            statistic="Maximum",
            period_seconds=fast_period,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            comparison="GreaterThanOrEqualToThreshold",
            threshold=WAKE_UP_THRESHOLD,
            treat_missing_data="notBreaching",
        ),
        wake_up_steps=wake_up_steps(target, scaling.max_count),
        fast_scale_out=FastScaleOutRule(
            target_backlog_per_worker=target,
            latency_seconds=scaling.target_latency_seconds,
            period_seconds=fast_period,
        ),
        fast_scale_out_steps=fast_scale_out_steps(scaling.max_count),
        scale_in=ScaleInRule(
            min_count=scaling.min_count,
            allowed_backlog_per_remaining_worker=SCALE_IN_LOAD_FRACTION * target,
            period_seconds=SCALING_ALARM_PERIOD_SECONDS,
            evaluation_periods=timings.scale_in_quiet_minutes * 60 // SCALING_ALARM_PERIOD_SECONDS,
        ),
        scale_in_cooldown_seconds=timings.scale_in_cooldown_seconds,
        queue_age_alarm=MetricAlarmRule(
            metric=schema.POOL_OLDEST_AGE,
            statistic="Maximum",
            period_seconds=SCALING_ALARM_PERIOD_SECONDS,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            comparison="GreaterThanThreshold",
            threshold=timings.queue_age_alarm_seconds,
            treat_missing_data="notBreaching",  # silence has its own alarm
        ),
        publisher_silent_alarm=MetricAlarmRule(
            metric=schema.POOL_BACKLOG,
            statistic="SampleCount",
            period_seconds=silent_period,
            evaluation_periods=math.ceil(silent_seconds / silent_period),
            datapoints_to_alarm=math.ceil(silent_seconds / silent_period),
            comparison="LessThanThreshold",
            threshold=1,
            treat_missing_data="breaching",
        ),
        calibration=CalibrationRule(configured_task_seconds=scaling.task_seconds),
    )


# --- Expected reaction times -----------------------------------------------------------------------


@dataclass(frozen=True)
class ReactionTimes:
    """Worst-case seconds from a change in the queue to a decision (and to a worker running)."""

    wake_up_decision: int  # first message on an idle pool -> desired count set
    first_worker_running: int
    scale_out_decision: int  # backlog above target or latency breached -> the fast step adds workers
    added_worker_running: int
    tracking_scale_out_decision: int  # the backstop: target tracking's own alarm
    first_scale_in: int  # backlog gone -> first worker removed
    scale_in_step: int  # then one more removed every this many seconds

    def back_to_min(self, from_workers: int, min_count: int) -> int:
        steps = max(from_workers - min_count, 0)
        return 0 if steps == 0 else self.first_scale_in + (steps - 1) * self.scale_in_step


def reaction_times(scaling: PoolScaling, policies: PolicySet) -> ReactionTimes:
    interval = scaling.timings.publish_interval_seconds
    wake_up, fast = policies.wake_up_alarm, policies.fast_scale_out
    # A message can arrive just after a measurement; its datapoint then closes the next period(s).
    wake_up_decision = interval + wake_up.period_seconds * wake_up.datapoints_to_alarm
    scale_out_decision = interval + fast.period_seconds * fast.evaluation_periods
    # The alarm repeats its action once per period while in ALARM; the cooldown gates each repeat.
    period = policies.scale_in.period_seconds
    scale_in_step = max(math.ceil(policies.scale_in_cooldown_seconds / period), 1) * period
    return ReactionTimes(
        wake_up_decision=wake_up_decision,
        first_worker_running=wake_up_decision + FARGATE_STARTUP_SECONDS,
        scale_out_decision=scale_out_decision,
        added_worker_running=scale_out_decision + FARGATE_STARTUP_SECONDS,
        tracking_scale_out_decision=interval
        + TARGET_TRACKING_PERIOD_SECONDS * TARGET_TRACKING_SCALE_OUT_DATAPOINTS,
        first_scale_in=interval + policies.scale_in.period_seconds * policies.scale_in.evaluation_periods,
        scale_in_step=scale_in_step,
    )


_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanOrEqualToThreshold": lambda value, threshold: value >= threshold,
    "GreaterThanThreshold": lambda value, threshold: value > threshold,
    "LessThanThreshold": lambda value, threshold: value < threshold,
    "LessThanOrEqualToThreshold": lambda value, threshold: value <= threshold,
}
