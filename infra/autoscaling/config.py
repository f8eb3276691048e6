"""Autoscaling settings of a stack, shared by every worker pool."""

from __future__ import annotations

from dataclasses import dataclass

from infra.autoscaling.policies import ScalingParameters
from infra.config.reader import ConfigReader
from infra.services.config import WorkerPool, WorkersConfig

SCALING_KEYS = (
    "queueMetricsIntervalSeconds",
    "scaleInQuietMinutes",
    "scaleInCooldownSeconds",
    "scaleOutCooldownSeconds",
    "queueAgeAlarmSeconds",
)


@dataclass(frozen=True)
class ScalingConfig:
    queue_metrics_interval_seconds: int  # how often the publisher writes the queue metrics
    scale_in_quiet_minutes: int
    scale_in_cooldown_seconds: int
    scale_out_cooldown_seconds: int
    queue_age_alarm_seconds: int

    def parameters(self, pool: WorkerPool) -> ScalingParameters:
        """How `pool` scales on its queue length (`policies.policy_set` turns this into policies)."""
        return ScalingParameters(
            min_workers=pool.min_count,
            max_workers=pool.max_count,
            worker_concurrency=pool.concurrency,
            target_latency_seconds=pool.target_latency_seconds,
            task_seconds=pool.task_seconds,
            publish_interval_seconds=self.queue_metrics_interval_seconds,
            scale_in_quiet_minutes=self.scale_in_quiet_minutes,
            scale_in_cooldown_seconds=self.scale_in_cooldown_seconds,
            scale_out_cooldown_seconds=self.scale_out_cooldown_seconds,
            queue_age_alarm_seconds=self.queue_age_alarm_seconds,
        )

    @classmethod
    def read(cls, read: ConfigReader) -> ScalingConfig:
        return cls(
            queue_metrics_interval_seconds=read.integer("queueMetricsIntervalSeconds", 10, 300),
            scale_in_quiet_minutes=read.integer("scaleInQuietMinutes", 1, 1440),
            scale_in_cooldown_seconds=read.integer("scaleInCooldownSeconds", 0, 3600),
            scale_out_cooldown_seconds=read.integer("scaleOutCooldownSeconds", 0, 3600),
            queue_age_alarm_seconds=read.integer("queueAgeAlarmSeconds", 10, 86400),
        )

    def check_pools(self, read: ConfigReader, workers: WorkersConfig) -> None:
        """Every pool must scale: e.g. its latency target must let a worker hold one message."""
        if not read.valid("workerPools", *SCALING_KEYS):
            return
        for index, pool in enumerate(workers.pools):
            try:
                self.parameters(pool)
            except ValueError as error:
                read.report(f"workerPools[{index}]", pool.name, str(error))
