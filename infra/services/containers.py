"""ECS container definitions for each role, from plain values.

Every role runs the same image with the command `infra/app_contract.py` documents, as the image's
non-root user, on a read-only root file system with a tmpfs `/tmp` (the only path the app writes).
Secrets arrive only through `secrets` (Secrets Manager `valueFrom`), never through `environment`.
A role's container is described by a `ContainerSpec` (data); `container_definition` renders it
with what every container of the stack shares (`ContainerContext`: image, environment, secrets).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from infra import app_contract
from infra.app_contract import Role
from infra.services.config import AppSettings, SignupsConfig

# ECS stop timeout of web, Beat and migrate (the worker's comes from the stack config).
STOP_TIMEOUT_SECONDS = 30
TMP_SIZE_MIB = 128
HEALTH_CHECK = {"interval": 30, "timeout": 5, "retries": 3, "startPeriod": 60}
# ECS Exec bind-mounts its agent into the container and writes state next to it; with a read-only
# root file system these paths must be writable volumes or the agent exits at start.
ECS_EXEC_PATHS = {
    "ecs-exec-agents": "/managed-agents",
    "ecs-exec-state": "/var/lib/amazon/ssm",
    "ecs-exec-logs": "/var/log/amazon/ssm",
}


@dataclass(frozen=True)
class ContainerContext:
    """What every container of a stack shares."""

    image: str  # repository@sha256:digest, so every build is a new task definition revision
    environment: Mapping[str, str]
    secret_arns: Mapping[str, str]  # environment variable name -> Secrets Manager secret ARN
    region: str


@dataclass(frozen=True)
class ContainerSpec:
    """What one role's container runs, beyond what every container shares."""

    role: Role
    command: Sequence[str]
    stop_timeout_seconds: int
    environment: Mapping[str, str] = field(default_factory=dict)
    port: int | None = None
    health_check: Mapping[str, Any] | None = None
    # A non-essential container that exits does not stop its task: ECS restarts it in place.
    essential: bool = True


def shared_environment(settings: AppSettings, host_names: Sequence[str], region: str) -> dict[str, str]:
    """Plain settings every role gets; `host_names` are the names the web app is reached at."""
    app, celery = settings.app, settings.celery
    environment = {
        app_contract.DJANGO_SETTINGS_MODULE: app.django_settings_module,
        app_contract.DJANGO_ALLOWED_HOSTS: ",".join(host_names),
        app_contract.DJANGO_SECURE_SSL_REDIRECT: "true" if settings.https else "false",
        app_contract.LOG_LEVEL: app.log_level,
        app_contract.DEFAULT_FROM_EMAIL: app.default_from_email,
        app_contract.CELERY_TASK_SOFT_TIME_LIMIT: str(celery.soft_time_limit_seconds),
        app_contract.CELERY_TASK_TIME_LIMIT: str(celery.time_limit_seconds),
        app_contract.CELERY_VISIBILITY_TIMEOUT: str(celery.visibility_timeout_seconds),
        app_contract.CELERY_WORKER_STOP_TIMEOUT: str(settings.worker_stop_timeout_seconds),
        app_contract.PERIODIC_HEARTBEAT_SECONDS: str(settings.periodic_heartbeat_seconds),
        app_contract.AWS_REGION: region,
        app_contract.REDIS_KEY_PREFIX: settings.redis_key_prefix,
        **signups_environment(settings.signups),
    }
    if settings.https:
        origins = ",".join(f"https://{host}" for host in host_names)
        environment[app_contract.DJANGO_CSRF_TRUSTED_ORIGINS] = origins
    return environment


def signups_environment(signups: SignupsConfig) -> dict[str, str]:
    """Every role checks these at start (core.settings_checks), so every role gets them."""
    return {
        app_contract.EMAIL_TIMEOUT: str(signups.email_timeout_seconds),
        app_contract.WELCOME_EMAIL_RETRY_BACKOFF_SECONDS: str(signups.retry_backoff_seconds),
        app_contract.WELCOME_EMAIL_RETRY_MAX_DELAY_SECONDS: str(signups.retry_max_delay_seconds),
        app_contract.WELCOME_EMAIL_RETRY_WINDOW_SECONDS: str(signups.retry_window_seconds),
        app_contract.SIGNUP_SWEEP_SECONDS: str(signups.sweep_seconds),
        app_contract.SIGNUP_REQUEUE_AFTER_SECONDS: str(signups.requeue_after_seconds),
        app_contract.SIGNUP_RATE_LIMIT: signups.rate_limit,
    }


def data_environment(media_bucket: str, database_instance: str, secrets_fingerprint: str) -> dict[str, str]:
    """Where every role finds the stack's data besides its secrets, and which secret values it reads."""
    return {
        app_contract.MEDIA_BUCKET: media_bucket,
        app_contract.DATABASE_INSTANCE: database_instance,
        app_contract.SECURE_CONFIG_DIGEST: secrets_fingerprint,
    }


def task_volumes() -> list[dict[str, str]]:
    """Task-level volumes that the containers below mount (botocore `Volume` shape)."""
    return [{"name": name} for name in ECS_EXEC_PATHS]


def heartbeat_health_check(heartbeat_file: str) -> dict[str, Any]:
    """Healthy while the process touched its heartbeat file recently (no Celery process per check)."""
    max_age = app_contract.HEARTBEAT_MAX_AGE_SECONDS
    test = f'test $(( $(date +%s) - $(stat -c %Y "{heartbeat_file}") )) -lt {max_age}'
    return {"command": ["CMD-SHELL", test], **HEALTH_CHECK}


def container_definition(context: ContainerContext, spec: ContainerSpec, log_group: str) -> dict[str, Any]:
    """The ECS container definition (RegisterTaskDefinition `containerDefinitions` item) of `spec`."""
    environment = {**context.environment, **spec.environment}
    leaked = sorted(set(environment) & set(context.secret_arns))
    if leaked:
        raise ValueError(f"secrets must not be plain environment variables: {leaked}")
    definition: dict[str, Any] = {
        "name": spec.role.value,
        "image": context.image,
        "essential": spec.essential,
        "command": list(spec.command),
        "workingDirectory": app_contract.APP_WORKDIR,
        "user": app_contract.APP_USER,
        "readonlyRootFilesystem": True,
        "environment": [{"name": name, "value": value} for name, value in sorted(environment.items())],
        "secrets": [{"name": name, "valueFrom": arn} for name, arn in sorted(context.secret_arns.items())],
        "linuxParameters": {
            "initProcessEnabled": True,
            "tmpfs": [
                {
                    "containerPath": app_contract.WRITABLE_TMP,
                    "size": TMP_SIZE_MIB,
                    "mountOptions": ["rw", "nosuid", "nodev", "mode=1777"],
                }
            ],
        },
        "mountPoints": [
            {"sourceVolume": volume, "containerPath": path, "readOnly": False}
            for volume, path in ECS_EXEC_PATHS.items()
        ],
        "stopTimeout": spec.stop_timeout_seconds,
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": log_group,
                "awslogs-region": context.region,
                "awslogs-stream-prefix": spec.role.value,
            },
        },
    }
    if spec.port is not None:
        definition["portMappings"] = [{"containerPort": spec.port, "protocol": "tcp"}]
    if spec.health_check is not None:
        definition["healthCheck"] = dict(spec.health_check)
    if not spec.essential:
        definition["restartPolicy"] = {"enabled": True}
    return definition
