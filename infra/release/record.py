"""The release record: which image a stack runs, what that image holds, and how web, its workers
and Beat are released and run.

Exported as the stack output `release` after every `pulumi up`; the pull request check compares a
change with it (tasks removed, migrations that will run, pools and Beat that change) and rollback
reads which image runs. Plain dicts in the shape of the output, and the functions that make and
read them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infra.release.compatibility import ReleaseState
from infra.scheduler.config import BeatConfig
from infra.web.config import WebDeployment
from infra.workers.config import WorkerPoolConfig, WorkersConfig


def pool_settings(pool: WorkerPoolConfig, canary_max_failure_percent: int) -> dict[str, Any]:
    scaling = pool.scaling
    return {
        "queues": list(pool.queues),
        "minCount": scaling.min_count,
        "maxCount": scaling.max_count,
        "canaryMinutes": pool.canary_minutes,
        "canaryMaxFailurePercent": canary_max_failure_percent,
    }


def beat_settings(beat: BeatConfig) -> dict[str, Any]:
    return {"enabled": beat.enabled, "spot": beat.spot, "cpu": beat.size.cpu, "memory": beat.size.memory}


def web_settings(deployment: WebDeployment) -> dict[str, Any]:
    return {
        "deployment": deployment.strategy,
        "canaryPercent": deployment.canary_percent,
        "canaryMinutes": deployment.canary_minutes,
        "linearStepPercent": deployment.linear_step_percent,
        "linearStepMinutes": deployment.linear_step_minutes,
        "bakeMinutes": deployment.bake_minutes,
        "rollback5xxPercent": deployment.rollback_5xx_percent,
        "rollbackP99Milliseconds": deployment.rollback_p99_milliseconds,
    }


def operations(workers: WorkersConfig, beat: BeatConfig, web: WebDeployment) -> dict[str, Any]:
    """How the stack releases and runs web, its workers and Beat, as the record keeps it."""
    return {
        "pools": {
            pool.name: pool_settings(pool, workers.canary_max_failure_percent) for pool in workers.pools
        },
        "beat": beat_settings(beat),
        "web": web_settings(web),
    }


@dataclass(frozen=True)
class ReleaseRecord:
    """A stack's `release` output, read back."""

    image_ref: str
    image_source: str
    image_tag: str | None  # the build's tag (its inputs' digest); None for a promoted image
    state: ReleaseState | None  # None when the image could not report it (a forced release)
    pools: Mapping[str, Mapping[str, Any]]
    beat: Mapping[str, Any]
    web: Mapping[str, Any]  # empty in records of releases before web deployment strategies

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
            web=dict(output.get("web") or {}),
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
