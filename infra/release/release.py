"""The release phase: migrations run as a one-off ECS task that gates the rollout.

`Release` wraps a dynamic resource whose provider (provider.py) runs the migrate task on create and
whenever the image or the migrate task definition changes, and fails the update if the migration
fails. Web, worker and Beat services `depends_on` the Release, so a failed migration leaves the
previous version serving. The engine never calls create/update during `pulumi preview`, and `diff`
ignores every other input, so a preview or an update with no new release runs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from infra.app_contract import Role
from infra.release.provider import MigrationProvider, RolloutCheckProvider
from infra.services.fargate import Placement

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

    def __post_init__(self) -> None:
        if self.timeout_seconds <= 0:
            raise ValueError(
                f"release timeout must be a positive number of seconds, got {self.timeout_seconds}"
            )
        if not self.container_name:
            raise ValueError("release container name must not be empty")


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
            # Outputs, filled in by the provider.
            "task_arn": None,
            "exit_code": None,
            "duration_seconds": None,
        }
        super().__init__(MigrationProvider(), name, props, opts)


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
        self.register_outputs(
            {
                "task_arn": self.task_arn,
                "exit_code": self.exit_code,
                "duration_seconds": self.duration_seconds,
                "task_definition_arn": self.task_definition_arn,
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
