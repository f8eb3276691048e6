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

from infra.app_contract import Role
from infra.config.stack import StackConfig
from infra.image.image import AppImage
from infra.image.reference import digest_of
from infra.release.provider import MigrationProvider, RolloutCheckProvider
from infra.release.record import consumed_queues, operations, record_output
from infra.services.fargate import FargateTask, Placement

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


def release_args(
    config: StackConfig,
    placement: Placement,
    migrate: FargateTask,
    image: AppImage,
    region: pulumi.Input[str],
    depends_on: Sequence[pulumi.Resource],
) -> ReleaseArgs:
    """The release of this stack's image: its migrate task, its gate and what its record keeps."""
    return ReleaseArgs(
        placement,
        migrate.task_definition_arn,
        image.image_ref,
        migrate.log_group_name,
        region,
        timeout_seconds=config.release.migrate_timeout_seconds,
        depends_on=depends_on,
        consumed_queues=consumed_queues(config),
        force=config.release.force,
        image_source=image.source,
        image_tag=image.tag,
        operations=operations(config),
    )


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


@dataclass(frozen=True)
class RolloutCheckArgs:
    cluster: pulumi.Input[str]
    service: pulumi.Input[str]  # the service's name
    task_definition_arn: pulumi.Input[str]  # the revision the service update deploys
    region: pulumi.Input[str]
    timeout_seconds: int
    service_resource: pulumi.Resource  # checked once its update is done


class RolloutVerification(pulumi.dynamic.Resource):
    deployment_id: pulumi.Output[str]

    def __init__(self, name: str, args: RolloutCheckArgs, opts: pulumi.ResourceOptions) -> None:
        props = {
            "cluster": args.cluster,
            "service": args.service,
            "task_definition_arn": args.task_definition_arn,
            "region": args.region,
            "timeout_seconds": args.timeout_seconds,
            "deployment_id": None,  # filled in by the provider
        }
        super().__init__(RolloutCheckProvider(), name, props, opts)


class RolloutCheck(pulumi.ComponentResource):
    """After each new task definition of a service: fail `pulumi up` if ECS rolled it back."""

    def __init__(self, name: str, args: RolloutCheckArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("djcelery:index:RolloutCheck", name, None, opts)
        verification = RolloutVerification(
            f"{name}-verify", args, pulumi.ResourceOptions(parent=self, depends_on=[args.service_resource])
        )
        self.deployment_id = verification.deployment_id
        self.register_outputs({"deployment_id": self.deployment_id})
