"""A simulator of the policy set: what a pool does, second by second, for a given queue."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from infra.workers.policies import (
    FARGATE_STARTUP_SECONDS,
    TARGET_TRACKING_PERIOD_SECONDS,
    TARGET_TRACKING_SCALE_OUT_DATAPOINTS,
    PolicySet,
    PoolScaling,
    ScalingTimings,
)
from queuemetrics import schema

Datapoints = list[tuple[int, dict[str, float]]]  # (second, metric name -> value) as published

# Example pools, also the ones the documentation (docs/autoscaling.md) works through.
DEV_EXAMPLE = PoolScaling(
    min_count=0,
    max_count=3,
    concurrency=2,
    target_latency_seconds=60,
    task_seconds=2,
    timings=ScalingTimings(
        publish_interval_seconds=10,
        scale_in_quiet_minutes=5,
        scale_in_cooldown_seconds=60,
        scale_out_cooldown_seconds=60,
        queue_age_alarm_seconds=600,
    ),
)
PROD_EXAMPLE = PoolScaling(
    min_count=1,
    max_count=10,
    concurrency=4,
    target_latency_seconds=30,
    task_seconds=2,
    timings=ScalingTimings(
        publish_interval_seconds=10,
        scale_in_quiet_minutes=15,
        scale_in_cooldown_seconds=300,
        scale_out_cooldown_seconds=60,
        queue_age_alarm_seconds=120,
    ),
)


@dataclass
class _Worker:
    ready_at: int
    slots: list[float] = field(default_factory=list)  # remaining seconds of each running task
    draining: bool = False


@dataclass(frozen=True)
class SimulationSample:
    second: int
    waiting: int
    in_flight: int
    desired: int
    running: int
    oldest_age: int = 0  # seconds the oldest waiting message has waited


@dataclass
class _Alarm:
    """Per-period values of one alarm and the last time its policy acted."""

    history: list[bool] = field(default_factory=list)
    last_action: float = -math.inf

    def record(self, breaching: bool, evaluation_periods: int) -> bool:
        """Adds this period's value; whether the last `evaluation_periods` all breached."""
        self.history.append(breaching)
        recent = self.history[-evaluation_periods:]
        return len(recent) == evaluation_periods and all(recent)

    def cooled(self, second: int, cooldown: int) -> bool:
        return second - self.last_action >= cooldown


@dataclass
class _StepCooldown:
    """Application Auto Scaling's scale-out cooldown of a step policy: while it lasts, the capacity
    the initiating action added counts as part of the next one, so only the difference is added."""

    until: float = -math.inf
    base: int = 0  # the capacity before the initiating action

    def apply(self, second: int, desired: int, adjustment: int, cooldown: int) -> int:
        if second < self.until:
            return max(desired, self.base + adjustment)
        self.base, self.until = desired, second + cooldown
        return desired + adjustment


def simulate(
    params: PoolScaling,
    policies: PolicySet,
    arrivals: Mapping[int, int],
    duration_seconds: int,
    initial_desired: int | None = None,
    startup_seconds: int = FARGATE_STARTUP_SECONDS,
) -> list[SimulationSample]:
    """One sample per second of a pool under `policies`, fed `arrivals` (second -> new messages).

    Model: each worker runs `worker_concurrency` tasks of `task_seconds`; a new worker runs
    `startup_seconds` after the desired count rises; a removed worker takes no new work and
    leaves when its running tasks finish (warm shutdown). The publisher measures every
    `publish_interval_seconds` with the publisher's own formulas; alarms aggregate those
    datapoints per period; missing data is handled as each alarm declares.
    """
    desired = policies.min_count if initial_desired is None else initial_desired
    pool = _Pool(params, [_Worker(ready_at=0) for _ in range(desired)])
    scaling = _Scaling(policies)
    samples = []
    for second in range(duration_seconds):
        running = pool.start_work(second, arrivals.get(second, 0))
        if second % params.timings.publish_interval_seconds == 0:
            scaling.publish(second, pool.waiting + pool.in_flight, desired, pool.oldest_age(second))
        desired = pool.converge(desired, scaling.evaluate(second, desired), second + startup_seconds)
        pool.finish_work(running)
        samples.append(
            SimulationSample(
                second=second,
                waiting=pool.waiting,
                in_flight=pool.in_flight,
                desired=desired,
                running=sum(1 for worker in pool.workers if worker.ready_at <= second),
                oldest_age=pool.oldest_age(second),
            )
        )
    return samples


@dataclass
class _Pool:
    """The pool's workers and its queue."""

    params: PoolScaling
    workers: list[_Worker]
    waiting: int = 0
    arrived_at: deque[list[int]] = field(default_factory=deque)  # [second, messages] in FIFO order

    @property
    def in_flight(self) -> int:
        return sum(len(worker.slots) for worker in self.workers)

    def oldest_age(self, second: int) -> int:
        return second - self.arrived_at[0][0] if self.arrived_at else 0

    def start_work(self, second: int, arrived: int) -> list[_Worker]:
        """New messages arrive; every running worker that is not draining fills its free slots."""
        if arrived:
            self.waiting += arrived
            self.arrived_at.append([second, arrived])
        running = [worker for worker in self.workers if worker.ready_at <= second]
        for worker in running:
            while not worker.draining and len(worker.slots) < self.params.concurrency and self.waiting:
                worker.slots.append(self.params.task_seconds)
                self._take_oldest()
        return running

    def _take_oldest(self) -> None:
        self.waiting -= 1
        self.arrived_at[0][1] -= 1
        if not self.arrived_at[0][1]:
            self.arrived_at.popleft()

    def finish_work(self, running: list[_Worker]) -> None:
        """One second of work; a draining worker leaves when its tasks are done."""
        for worker in running:
            worker.slots = [left - 1 for left in worker.slots if left > 1]
        self.workers = [worker for worker in self.workers if not (worker.draining and not worker.slots)]

    def converge(self, desired: int, new_desired: int, ready_at: int) -> int:
        """ECS converges the service on `new_desired`: start new tasks, or stop the newest first."""
        active = [worker for worker in self.workers if not worker.draining]
        for _ in range(new_desired - len(active)):
            self.workers.append(_Worker(ready_at=ready_at))
        for worker in reversed(active[new_desired:] if new_desired < len(active) else []):
            worker.draining = True
        return new_desired


@dataclass
class _Scaling:
    """The published datapoints and the four scaling alarms that act on them."""

    policies: PolicySet
    datapoints: Datapoints = field(default_factory=list)
    wake_up: _Alarm = field(default_factory=_Alarm)
    fast: _Alarm = field(default_factory=_Alarm)
    fast_cooldown: _StepCooldown = field(default_factory=_StepCooldown)
    tracking: _Alarm = field(default_factory=_Alarm)
    scale_in: _Alarm = field(default_factory=_Alarm)

    def publish(self, second: int, backlog: int, desired: int, oldest_age: int) -> None:
        """What the publisher writes, with its own formulas."""
        signals = schema.scaling_signals(backlog, desired)
        self.datapoints.append(
            (
                second,
                {
                    schema.POOL_BACKLOG.name: backlog,
                    schema.POOL_DESIRED_WORKERS.name: desired,
                    schema.POOL_OLDEST_AGE.name: oldest_age,
                    schema.BACKLOG_PER_WORKER.name: signals.backlog_per_worker,
                    schema.WAKE_UP_BACKLOG.name: signals.wake_up_backlog,
                },
            )
        )

    def evaluate(self, second: int, desired: int) -> int:
        """The desired count after every alarm whose period ends at `second` has been evaluated.

        When several policies fire, Application Auto Scaling keeps the largest capacity.
        """
        growth = max(
            desired,
            self._wake_up(second),
            self._fast_scale_out(second, desired),
            self._tracking(second, desired),
        )
        if growth > desired:
            return min(growth, self.policies.max_count)
        return self._scaled_in(second, desired)

    def _wake_up(self, second: int) -> int:
        rule = self.policies.wake_up_alarm
        if not second or second % rule.period_seconds:
            return 0
        value = _aggregate(self.datapoints, second, rule.period_seconds, rule.metric.name, rule.statistic)
        breached = self.wake_up.record(value is not None and rule.breaches(value), rule.evaluation_periods)
        if (
            value is None
            or not breached
            or not self.wake_up.cooled(second, self.policies.scale_out_cooldown_seconds)
        ):
            return 0
        self.wake_up.last_action = second
        return next(
            step.adjustment for step in self.policies.wake_up_steps if step.contains(value - rule.threshold)
        )

    def _fast_scale_out(self, second: int, desired: int) -> int:
        rule = self.policies.fast_scale_out
        if not second or second % rule.period_seconds:
            return 0
        values = [
            _aggregate(self.datapoints, second, rule.period_seconds, metric.name, rule.statistic)
            for metric in (schema.POOL_BACKLOG, schema.POOL_DESIRED_WORKERS, schema.POOL_OLDEST_AGE)
        ]
        backlog, published_desired, age = values
        if backlog is None or published_desired is None:
            self.fast.record(False, rule.evaluation_periods)
            return 0
        missing = rule.missing(backlog, published_desired, age)
        if not self.fast.record(rule.breaches(backlog, published_desired, age), rule.evaluation_periods):
            return 0
        step = next(s for s in self.policies.fast_scale_out_steps if s.contains(missing - rule.threshold))
        cooldown = self.policies.scale_out_cooldown_seconds
        return self.fast_cooldown.apply(second, desired, step.adjustment, cooldown)

    def _tracking(self, second: int, desired: int) -> int:
        if not second or second % TARGET_TRACKING_PERIOD_SECONDS:
            return 0
        target = self.policies.target_backlog_per_worker
        value = _aggregate(
            self.datapoints, second, TARGET_TRACKING_PERIOD_SECONDS, schema.BACKLOG_PER_WORKER.name, "Average"
        )
        breached = self.tracking.record(
            value is not None and value > target, TARGET_TRACKING_SCALE_OUT_DATAPOINTS
        )
        cooled = self.tracking.cooled(second, self.policies.scale_out_cooldown_seconds)
        if value is None or not breached or desired == 0 or not cooled:
            return 0
        self.tracking.last_action = second
        return math.ceil(desired * value / target)

    def _scaled_in(self, second: int, desired: int) -> int:
        rule = self.policies.scale_in
        if not second or second % rule.period_seconds:
            return desired
        backlog = _aggregate(
            self.datapoints, second, rule.period_seconds, schema.POOL_BACKLOG.name, rule.backlog_statistic
        )
        floor = _aggregate(
            self.datapoints,
            second,
            rule.period_seconds,
            schema.POOL_DESIRED_WORKERS.name,
            rule.desired_statistic,
        )
        breaching = backlog is not None and floor is not None and rule.breaches(backlog, floor)
        if not self.scale_in.record(breaching, rule.evaluation_periods):
            return desired
        if not self.scale_in.cooled(second, self.policies.scale_in_cooldown_seconds):
            return desired
        self.scale_in.last_action = second
        return max(desired - 1, self.policies.min_count)


def _aggregate(datapoints: Datapoints, second: int, period: int, metric: str, statistic: str) -> float | None:
    values = [values[metric] for at, values in datapoints if second - period <= at < second]
    if not values:
        return None
    return _STATISTICS[statistic](values)


_STATISTICS: dict[str, Callable[[list[float]], float]] = {
    "Maximum": max,
    "Minimum": min,
    "Average": lambda values: sum(values) / len(values),
    "SampleCount": len,
}
