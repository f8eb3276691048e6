"""The release record: which image a stack runs, what that image holds, and how its workers run.

Exported as the stack output `release` after every `pulumi up`; the pull request check compares a
change with it (tasks removed, migrations that will run, pools and Beat that change) and rollback
reads which image runs. Plain dicts in the shape of the output, and the functions that make and
read them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infra.config.stack import StackConfig
from infra.release.compatibility import ReleaseState
from infra.services.config import BeatConfig, WorkerPool


def pool_settings(pool: WorkerPool) -> dict[str, Any]:
    return {"queues": list(pool.queues), "minCount": pool.min_count, "maxCount": pool.max_count}


def beat_settings(beat: BeatConfig) -> dict[str, Any]:
    return {"enabled": beat.enabled, "spot": beat.spot, "cpu": beat.size.cpu, "memory": beat.size.memory}


def operations(config: StackConfig) -> dict[str, Any]:
    """How the stack runs its workers and Beat, as the record keeps it."""
    return {
        "pools": {pool.name: pool_settings(pool) for pool in config.workers.pools},
        "beat": beat_settings(config.beat),
    }


def consumed_queues(config: StackConfig) -> list[str]:
    return sorted({queue for pool in config.workers.pools for queue in pool.queues})


@dataclass(frozen=True)
class ReleaseRecord:
    """A stack's `release` output, read back."""

    image_ref: str
    image_source: str
    image_tag: str | None  # the build's tag (its inputs' digest); None for a promoted image
    state: ReleaseState | None  # None when the image could not report it (a forced release)
    pools: Mapping[str, Mapping[str, Any]]
    beat: Mapping[str, Any]

    @classmethod
    def from_output(cls, output: Mapping[str, Any]) -> ReleaseRecord:
        image = output.get("image") or {}
        state = None
        if output.get("tasks") is not None and output.get("migrations") is not None:
            state = ReleaseState(
                tasks=tuple(output["tasks"]),
                routes=dict(output.get("routes") or {}),
                beat=dict(output.get("beatSchedule") or {}),
                migrations=tuple(output["migrations"]),
            )
        return cls(
            image_ref=str(image.get("ref", "")),
            image_source=str(image.get("source", "")),
            image_tag=image.get("tag"),
            state=state,
            pools=dict(output.get("pools") or {}),
            beat=dict(output.get("beat") or {}),
        )


def record_output(
    image: Mapping[str, Any], released: Mapping[str, Any], ops: Mapping[str, Any]
) -> dict[str, Any]:
    """The `release` output from the image, the release resource's outputs and `operations()`."""
    return {
        "image": dict(image),
        "tasks": released.get("tasks"),
        "routes": released.get("routes"),
        "beatSchedule": released.get("beat_schedule"),
        "migrations": released.get("migrations"),
        "migrationsRun": released.get("migrations_run"),
        "overridden": released.get("overridden") or [],
        **ops,
    }
