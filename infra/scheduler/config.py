"""Celery Beat settings of a stack."""

from __future__ import annotations

from dataclasses import dataclass

from infra.app_contract import Role
from infra.config.reader import ConfigReader
from infra.services.task_sizes import TaskSize, read_task_size


@dataclass(frozen=True)
class BeatConfig:
    enabled: bool  # exactly one Celery Beat task
    spot: bool
    size: TaskSize
    periodic_heartbeat_seconds: int  # interval of the recorded heartbeat periodic task

    @property
    def service_key(self) -> str:
        """The scheduler service's logical name: Beat with the publisher, or the publisher alone."""
        return Role.BEAT.value if self.enabled else Role.QUEUE_METRICS.value

    @classmethod
    def read(cls, read: ConfigReader) -> BeatConfig:
        return cls(
            enabled=read.boolean("beatEnabled"),
            spot=read.boolean("beatSpot"),
            size=read_task_size(read, "beatCpu", "beatMemory"),
            periodic_heartbeat_seconds=read.integer("periodicHeartbeatSeconds", 1, 86400),
        )
