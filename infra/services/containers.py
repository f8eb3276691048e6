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
from infra.autoscaling.publisher import QueueMetricsPublisher
from infra.config.stack import StackConfig
from infra.services.config import SignupsConfig, WorkerPool

# ECS stop timeout of web, Beat and migrate (the worker's comes from the stack config).
STOP_TIMEOUT_SECONDS = 30
# gunicorn must finish in-flight requests before ECS sends SIGKILL.
GUNICORN_GRACEFUL_TIMEOUT_SECONDS = STOP_TIMEOUT_SECONDS - 5
# gunicorn keeps idle connections open longer than the ALB, or the ALB reuses closed ones (502s).
GUNICORN_KEEPALIVE_MARGIN_SECONDS = 15
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


def shared_environment(config: StackConfig, host_names: Sequence[str], region: str) -> dict[str, str]:
    """Plain settings every role gets; `host_names` are the names the web app is reached at."""
    environment = {
        app_contract.DJANGO_SETTINGS_MODULE: config.app.django_settings_module,
        app_contract.DJANGO_ALLOWED_HOSTS: ",".join(host_names),
        app_contract.DJANGO_SECURE_SSL_REDIRECT: "true" if config.web.https else "false",
        app_contract.LOG_LEVEL: config.app.log_level,
        app_contract.DEFAULT_FROM_EMAIL: config.app.default_from_email,
        app_contract.CELERY_TASK_SOFT_TIME_LIMIT: str(config.celery.soft_time_limit_seconds),
        app_contract.CELERY_TASK_TIME_LIMIT: str(config.celery.time_limit_seconds),
        app_contract.CELERY_VISIBILITY_TIMEOUT: str(config.celery.visibility_timeout_seconds),
        app_contract.CELERY_WORKER_STOP_TIMEOUT: str(config.workers.stop_timeout_seconds),
        app_contract.PERIODIC_HEARTBEAT_SECONDS: str(config.beat.periodic_heartbeat_seconds),
        app_contract.AWS_REGION: region,
        **signups_environment(config.signups),
    }
    if config.web.https:
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


def data_environment(media_bucket: str, database_instance: str) -> dict[str, str]:
    """Where every role finds the stack's data besides its secrets."""
    return {app_contract.MEDIA_BUCKET: media_bucket, app_contract.DATABASE_INSTANCE: database_instance}


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


def web_container(config: StackConfig) -> ContainerSpec:
    # No container health check: the ALB target group checks /healthz and ECS replaces failing tasks.
    return ContainerSpec(
        role=Role.WEB,
        command=app_contract.web_command(),
        stop_timeout_seconds=STOP_TIMEOUT_SECONDS,
        port=app_contract.CONTAINER_PORT,
        environment={
            app_contract.GUNICORN_TIMEOUT: str(config.web.gunicorn_timeout_seconds),
            app_contract.GUNICORN_KEEPALIVE: str(
                config.web.alb_idle_timeout_seconds + GUNICORN_KEEPALIVE_MARGIN_SECONDS
            ),
            app_contract.GUNICORN_GRACEFUL_TIMEOUT: str(GUNICORN_GRACEFUL_TIMEOUT_SECONDS),
        },
    )


def worker_container(pool: WorkerPool, stop_timeout_seconds: int) -> ContainerSpec:
    return ContainerSpec(
        role=Role.WORKER,
        command=app_contract.worker_command(
            pool.name, pool.queues, pool.concurrency, pool.prefetch_multiplier
        ),
        stop_timeout_seconds=stop_timeout_seconds,
        health_check=heartbeat_health_check(app_contract.WORKER_HEARTBEAT_FILE),
    )


def beat_container() -> ContainerSpec:
    return ContainerSpec(
        role=Role.BEAT,
        command=app_contract.beat_command(),
        stop_timeout_seconds=STOP_TIMEOUT_SECONDS,
        health_check=heartbeat_health_check(app_contract.BEAT_HEARTBEAT_FILE),
    )


def migrate_container() -> ContainerSpec:
    return ContainerSpec(
        role=Role.MIGRATE, command=app_contract.migrate_command(), stop_timeout_seconds=STOP_TIMEOUT_SECONDS
    )


def queue_metrics_container(publisher: QueueMetricsPublisher, *, essential: bool) -> ContainerSpec:
    """The publisher that feeds worker autoscaling: a sidecar of Beat (non-essential, so a metrics
    failure never stops the scheduler), or the only container of its own task without Beat."""
    return ContainerSpec(
        role=Role.QUEUE_METRICS,
        command=app_contract.queue_metrics_command(),
        stop_timeout_seconds=STOP_TIMEOUT_SECONDS,
        essential=essential,
        environment={
            app_contract.QUEUE_METRICS_NAMESPACE: publisher.namespace,
            app_contract.QUEUE_METRICS_INTERVAL_SECONDS: str(publisher.interval_seconds),
            app_contract.QUEUE_METRICS_POOLS: publisher.pools_json,
            app_contract.ECS_CLUSTER: publisher.cluster_name,
        },
    )
