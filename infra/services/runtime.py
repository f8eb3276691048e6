"""What every task of the stack shares: the image, the environment, the secrets, the roles' scope.

Each role runs the same image with its own command; `task_runtime` builds the part they share once,
and each role's component adds its container (its command, stop timeout, health check) on top.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi

from infra import app_contract
from infra.image.config import CpuArchitecture
from infra.image.image import AppImage
from infra.image.reference import digest_of
from infra.naming import Cloud, StackNames
from infra.services import containers
from infra.services.config import AppSettings
from infra.services.fargate import TaskRuntime


@dataclass(frozen=True)
class TaskData:
    """The stack's data as every task reaches it, besides the secrets."""

    media_bucket_name: pulumi.Input[str]
    database_instance: str  # the RDS identifier behind DATABASE_URL
    secrets_fingerprint: pulumi.Input[str]  # changes with any secret's value (AppSecrets.fingerprint)
    # Permissions of every task role (media files, ECS Exec sessions): suffix -> policy JSON.
    task_role_policies: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    key_arn: pulumi.Input[str] | None = None  # the stack's KMS key


@dataclass(frozen=True)
class RuntimeSettings:
    """The stack settings every task definition reads."""

    app: AppSettings
    log_retention_days: int
    cpu_architecture: CpuArchitecture
    # A new task definition revision leaves the previous one registered, so ECS (circuit breaker)
    # and the release can roll back to it; off in ephemeral stacks, whose destroy removes everything.
    keep_previous_revisions: bool


def task_runtime(
    settings: RuntimeSettings,
    names: StackNames,
    image: AppImage,
    secret_arns: Mapping[str, pulumi.Output[str]],
    host_names: pulumi.Output[list[str]],
    cloud: Cloud,
    data: TaskData,
) -> TaskRuntime:
    """What every task of the stack shares: the image, the environment, the secrets, the roles' scope."""
    context = pulumi.Output.all(
        image.image_ref,
        host_names,
        cloud.region,
        pulumi.Output.all(**secret_arns),
        data.media_bucket_name,
        data.secrets_fingerprint,
    ).apply(
        lambda values: containers.ContainerContext(
            image=values[0],
            environment={
                **containers.shared_environment(settings.app, values[1], values[2]),
                **containers.data_environment(values[4], data.database_instance, values[5]),
                app_contract.IMAGE_DIGEST: digest_of(values[0]),
            },
            secret_arns=values[3],
            region=values[2],
        )
    )
    return TaskRuntime(
        containers=context,
        secret_arns=list(secret_arns.values()),
        repository_arn=image.repository_arn,
        account_id=cloud.account_id,
        names=names,
        log_retention_days=settings.log_retention_days,
        cpu_architecture=settings.cpu_architecture,
        keep_previous_revisions=settings.keep_previous_revisions,
        task_role_policies=data.task_role_policies,
        key_arn=data.key_arn,
    )
