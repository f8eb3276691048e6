"""The release phase: a compatibility gate, then migrations, as one-off ECS tasks that gate the rollout.

`Release` wraps a dynamic resource whose provider (provider.py), on create and whenever the image or
the migrate task definition changes, first has the new image report its release state against the
live database and broker and refuses the release on any problem (compatibility.py: tasks with
waiting messages that the image no longer registers, queues no pool consumes, migrations the
database has and the image lacks), then runs the migrate task, and fails the update if either
fails. Web, worker and Beat services `depends_on` the Release, so a failed migration leaves the
previous version serving. The engine never calls create/update during `pulumi preview`, and `diff`
ignores every other input, so a preview or an update with no new release runs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi

from infra import app_contract
from infra.app_contract import Role
from infra.image.image import AppImage
from infra.image.reference import digest_of
from infra.release.config import ReleaseConfig
from infra.release.provider import MigrationProvider
from infra.release.record import operations, record_output
from infra.scheduler.config import BeatConfig
from infra.services.containers import STOP_TIMEOUT_SECONDS, ContainerSpec
from infra.services.fargate import FargateTask, FargateTaskArgs, Placement, TaskRuntime
from infra.services.task_sizes import TaskSize
from infra.web.config import WebDeployment
from infra.workers.config import WorkersConfig

DEFAULT_TIMEOUT_SECONDS = 15 * 60


@dataclass(frozen=True)
class ReleaseArgs:
    placement: Placement  # the services' cluster, subnets and security groups
    task_definition_arn: pulumi.Input[str]  # the migrate task definition
    image: pulumi.Input[str]  # the image reference with its digest, repo@sha256:...
    log_group_name: pulumi.Input[str]
    region: pulumi.Input[str]
    container_name: str = Role.MIGRATE.value
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    # What the migrate task needs at start (network, data stores, secrets, its task's roles).
    depends_on: Sequence[pulumi.Resource] = ()
    consumed_queues: Sequence[str] = ()  # the queues the stack's worker pools consume
    force: bool = False  # release even if the gate finds problems (they are recorded)
    # For the release record: where the image comes from, the build's tag, pools and Beat.
    image_source: str = "build"
    image_tag: str | None = None
    operations: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.timeout_seconds <= 0:
            raise ValueError(
                f"release timeout must be a positive number of seconds, got {self.timeout_seconds}"
            )
        if not self.container_name:
            raise ValueError("release container name must not be empty")


def migrate_container() -> ContainerSpec:
    return ContainerSpec(
        role=Role.MIGRATE, command=app_contract.migrate_command(), stop_timeout_seconds=STOP_TIMEOUT_SECONDS
    )


@dataclass(frozen=True)
class ReleasedStack:
    """What a release needs to know of the stack's settings: its own, and the web deployment,
    workers and Beat it gates; its migrate task runs at the web's size."""

    release: ReleaseConfig
    workers: WorkersConfig
    beat: BeatConfig
    web: WebDeployment
    task_size: TaskSize


class MigrationRun(pulumi.dynamic.Resource):
    task_arn: pulumi.Output[str]
    exit_code: pulumi.Output[int]
    duration_seconds: pulumi.Output[float]
    task_definition_arn: pulumi.Output[str]

    def __init__(self, name: str, args: ReleaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        props = {
            "cluster": args.placement.cluster_arn,
            "task_definition_arn": args.task_definition_arn,
            "image": args.image,
            "subnet_ids": args.placement.subnet_ids,
            "security_group_ids": args.placement.security_group_ids,
            "assign_public_ip": args.placement.assign_public_ip,
            "log_group_name": args.log_group_name,
            "container_name": args.container_name,
            "region": args.region,
            "timeout_seconds": args.timeout_seconds,
            "consumed_queues": list(args.consumed_queues),
            "force": args.force,
            # Outputs, filled in by the provider.
            **dict.fromkeys(RELEASED),
        }
        super().__init__(MigrationProvider(), name, props, opts)


# What the provider reports about a release (provider.release_outputs).
RELEASED = (
    "task_arn",
    "exit_code",
    "duration_seconds",
    "tasks",
    "routes",
    "beat_schedule",
    "migrations",
    "migrations_run",
    "overridden",
)


class Release(pulumi.ComponentResource):
    """Migrations for one release. Make every service `depends_on` it."""

    def __init__(self, name: str, args: ReleaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("djcelery:index:Release", name, None, opts)
        run = MigrationRun(
            f"{name}-migrate", args, pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))
        )
        self.task_arn = run.task_arn
        self.exit_code = run.exit_code
        self.duration_seconds = run.duration_seconds
        self.task_definition_arn = run.task_definition_arn
        released = pulumi.Output.all(**{key: getattr(run, key) for key in RELEASED})
        self.record: pulumi.Output[dict[str, Any]] = pulumi.Output.all(args.image, released).apply(
            lambda values: record_output(
                {
                    "ref": values[0],
                    "digest": digest_of(values[0]),
                    "source": args.image_source,
                    "tag": args.image_tag,
                },
                values[1],
                args.operations,
            )
        )
        self.register_outputs(
            {
                "task_arn": self.task_arn,
                "exit_code": self.exit_code,
                "duration_seconds": self.duration_seconds,
                "task_definition_arn": self.task_definition_arn,
                "record": self.record,
            }
        )


def release_phase(
    settings: ReleasedStack,
    runtime: TaskRuntime,
    placement: Placement,
    image: AppImage,
    region: pulumi.Input[str],
    prerequisites: Sequence[pulumi.Resource],
    opts: pulumi.ResourceOptions,
) -> tuple[FargateTask, Release]:
    """The migrate task definition and the release that runs it once `prerequisites` exist."""
    migrate = FargateTask(
        Role.MIGRATE, FargateTaskArgs(settings.task_size, [migrate_container()], runtime), opts
    )
    args = ReleaseArgs(
        placement,
        migrate.task_definition_arn,
        image.image_ref,
        migrate.log_group_name,
        region,
        timeout_seconds=settings.release.migrate_timeout_seconds,
        depends_on=[*prerequisites, migrate],
        consumed_queues=settings.workers.consumed_queues,
        force=settings.release.force,
        image_source=image.source,
        image_tag=image.tag,
        operations=operations(settings.workers, settings.beat, settings.web),
    )
    return migrate, Release("release", args, opts)
