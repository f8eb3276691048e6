"""The one interface between the Pulumi program and the application image.

Every ECS task definition is built from these commands and variable names, the local Procfile
runs the same commands, and the end-to-end tests start real processes from the task definitions
the program declares, so any drift between `infra/` and `app/` fails a test.

This module is pure Python (no Pulumi, no Django) so both sides and the tests can import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum


class Role(StrEnum):
    """What a container of the app image runs. The value is also the container's name and the
    awslogs stream prefix of its logs (`<role>/<role>/<task id>`)."""

    WEB = "web"
    WORKER = "worker"
    BEAT = "beat"
    MIGRATE = "migrate"
    QUEUE_METRICS = "queue-metrics"


# --- Image layout -----------------------------------------------------------------------------
APP_WORKDIR = "/app"
CONTAINER_PORT = 8000
# Non-root numeric user baked into the image (Dockerfile `USER`) and repeated in every container
# definition, because Security Hub ECS.20 only looks at the task definition.
APP_UID = 10001
APP_USER = f"{APP_UID}:{APP_UID}"
# The only writable path in a container with a read-only root file system (tmpfs on Fargate).
WRITABLE_TMP = "/tmp"  # noqa: S108 - the tmpfs mount point, not a temp file

# --- Settings modules -------------------------------------------------------------------------
PRODUCTION_SETTINGS = "config.settings.production"

# --- Health ------------------------------------------------------------------------------------
LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
# The Django admin (app/config/urls.py); the load balancer lets only adminAllowedCidrs reach it.
ADMIN_PATH = "/admin/"
# Worker and Beat touch these files from their main process; the container health check reads
# their age instead of starting a whole Celery process (`celery inspect ping`) every interval.
WORKER_HEARTBEAT_FILE = f"{WRITABLE_TMP}/celery-worker-heartbeat"
BEAT_HEARTBEAT_FILE = f"{WRITABLE_TMP}/celery-beat-heartbeat"
HEARTBEAT_MAX_AGE_SECONDS = 90

# --- Celery queues -----------------------------------------------------------------------------
DEFAULT_QUEUE = "default"
EMAIL_QUEUE = "email"
QUEUES = (DEFAULT_QUEUE, EMAIL_QUEUE)

# --- Environment variables ---------------------------------------------------------------------
# Secrets: always delivered through the task definition's `secrets` (Secrets Manager valueFrom).
DATABASE_URL = "DATABASE_URL"  # postgres://user:pw@host:5432/db?sslmode=require
REDIS_URL = "REDIS_URL"  # rediss://:token@host:6379/0?ssl_cert_reqs=required
DJANGO_SECRET_KEY = "DJANGO_SECRET_KEY"  # noqa: S105 - a variable name, not a secret
SECRET_VARIABLES = (DATABASE_URL, REDIS_URL, DJANGO_SECRET_KEY)
# Optional secret: SMTP settings with credentials, e.g. smtp+tls://user:password@smtp.example.com:587.
# Without it the app writes emails to its log.
EMAIL_URL = "EMAIL_URL"

# Only on the preview base's one-off `tenant` task: the base database's master connection URL
# (postgres://master:pw@host:5432/postgres?sslmode=require), which creates and drops the previews'
# roles and databases.
ADMIN_DATABASE_URL = "ADMIN_DATABASE_URL"

# Plain settings: delivered through `environment`.
# Before every Redis key the app uses (broker, results, Beat lock, cache, rate limit, metrics, raw
# keys): empty in a full stack, `pr-<N>:` in a thin preview sharing its base's broker. The app
# refuses a value that does not match REDIS_KEY_PREFIX_PATTERN.
REDIS_KEY_PREFIX = "REDIS_KEY_PREFIX"
REDIS_KEY_PREFIX_PATTERN = r"^([a-z0-9][a-z0-9-]{0,40}:)?$"
DJANGO_SETTINGS_MODULE = "DJANGO_SETTINGS_MODULE"
DJANGO_ALLOWED_HOSTS = "DJANGO_ALLOWED_HOSTS"  # comma-separated host names
DJANGO_CSRF_TRUSTED_ORIGINS = "DJANGO_CSRF_TRUSTED_ORIGINS"  # comma-separated https:// origins
DJANGO_SECURE_SSL_REDIRECT = "DJANGO_SECURE_SSL_REDIRECT"  # "true" only when the ALB serves HTTPS
LOG_LEVEL = "LOG_LEVEL"
DEFAULT_FROM_EMAIL = "DEFAULT_FROM_EMAIL"
CELERY_TASK_SOFT_TIME_LIMIT = "CELERY_TASK_SOFT_TIME_LIMIT"  # seconds
CELERY_TASK_TIME_LIMIT = "CELERY_TASK_TIME_LIMIT"  # seconds
CELERY_VISIBILITY_TIMEOUT = "CELERY_VISIBILITY_TIMEOUT"  # seconds, > hard limit
CELERY_WORKER_STOP_TIMEOUT = "CELERY_WORKER_STOP_TIMEOUT"  # the ECS stopTimeout of the worker
PERIODIC_HEARTBEAT_SECONDS = "PERIODIC_HEARTBEAT_SECONDS"  # Beat schedule of the recorded heartbeat
EMAIL_TIMEOUT = "EMAIL_TIMEOUT"  # seconds per SMTP operation, below the soft-to-hard time limit gap
# Welcome-email retries: capped exponential backoff over a window; the sweep re-drives due retries.
WELCOME_EMAIL_RETRY_WINDOW_SECONDS = "WELCOME_EMAIL_RETRY_WINDOW_SECONDS"  # how long to keep trying
WELCOME_EMAIL_RETRY_BACKOFF_SECONDS = "WELCOME_EMAIL_RETRY_BACKOFF_SECONDS"  # first retry delay
WELCOME_EMAIL_RETRY_MAX_DELAY_SECONDS = "WELCOME_EMAIL_RETRY_MAX_DELAY_SECONDS"  # longest retry delay
SIGNUP_SWEEP_SECONDS = "SIGNUP_SWEEP_SECONDS"  # Beat schedule of the sweep that re-drives signups
SIGNUP_REQUEUE_AFTER_SECONDS = "SIGNUP_REQUEUE_AFTER_SECONDS"  # age of a never-published signup
SIGNUP_RATE_LIMIT = "SIGNUP_RATE_LIMIT"  # signups per client address, e.g. 10/m
# Not set by the stack: signups per IPv6 /48 (e.g. 60/m), and per web process per minute.
SIGNUP_PREFIX_RATE_LIMIT = "SIGNUP_PREFIX_RATE_LIMIT"
SIGNUP_PROCESS_RATE_LIMIT = "SIGNUP_PROCESS_RATE_LIMIT"
GUNICORN_WORKERS = "GUNICORN_WORKERS"
GUNICORN_THREADS = "GUNICORN_THREADS"
GUNICORN_TIMEOUT = "GUNICORN_TIMEOUT"  # request timeout, below the ALB idle timeout
GUNICORN_KEEPALIVE = "GUNICORN_KEEPALIVE"  # above the ALB idle timeout
GUNICORN_GRACEFUL_TIMEOUT = "GUNICORN_GRACEFUL_TIMEOUT"  # below the ECS stop timeout
# comma-separated CIDRs whose clients reach ADMIN_PATH (the web config's adminAllowedCidrs); empty:
# nobody; 0.0.0.0/0,::/0: everyone. The app checks it after decoding the path (core.admin_fence).
ADMIN_ALLOWED_CIDRS = "ADMIN_ALLOWED_CIDRS"
# gunicorn's own variable: the peers whose X-Forwarded-Proto it trusts (the ALB's subnets).
FORWARDED_ALLOW_IPS = "FORWARDED_ALLOW_IPS"
# Not set by the stack: seconds a client has to send a whole request (core.buffering_worker).
GUNICORN_REQUEST_READ_TIMEOUT = "GUNICORN_REQUEST_READ_TIMEOUT"
# Not set by the stack: seconds a worker stays protected from scale-in after its last task ended.
WORKER_PROTECTION_IDLE_SECONDS = "WORKER_PROTECTION_IDLE_SECONDS"
# Set by ECS itself in every container (never by the task definition): the agent's endpoint, where
# workers turn task scale-in protection on and off (core.task_protection).
ECS_AGENT_URI = "ECS_AGENT_URI"
# Queue-metrics publisher (runs beside Beat).
QUEUE_METRICS_NAMESPACE = "QUEUE_METRICS_NAMESPACE"
QUEUE_METRICS_INTERVAL_SECONDS = "QUEUE_METRICS_INTERVAL_SECONDS"
QUEUE_METRICS_POOLS = "QUEUE_METRICS_POOLS"  # JSON: [{"pool", "queues": [...], "service"}]
ECS_CLUSTER = "ECS_CLUSTER"
AWS_REGION = "AWS_REGION"
# Media files (user uploads): the S3 bucket django-storages writes to, with the task role's
# credentials, in AWS_REGION. Without it the app stores uploads under /tmp (lost with the task).
MEDIA_BUCKET = "MEDIA_BUCKET"
# Not set by the stack: another S3 endpoint (e.g. a local S3-compatible server for tests).
MEDIA_S3_ENDPOINT_URL = "MEDIA_S3_ENDPOINT_URL"
# The RDS instance behind DATABASE_URL. The app does not need it; it changes when the stack is
# pointed at a restored database, which gives every task definition a new revision, so every
# service restarts and reads the new DATABASE_URL (ECS reads secrets only when a task starts).
DATABASE_INSTANCE = "DATABASE_INSTANCE"
# Not read by the app: a digest of the versions of the values tasks read through `secrets`. A new
# value of any secret changes it, so every task definition gets a new revision and every task
# restarts with the new value (ECS reads secrets only when a container starts). Its name has none of
# the words scanners take for a secret (SECRET, PASSWORD, TOKEN, KEY: Trivy AVD-AWS-0036).
SECURE_CONFIG_DIGEST = "SECURE_CONFIG_DIGEST"
# The digest (sha256:...) of the image every container runs, from the stack's image reference:
# workers log it with each task's outcome, so a release canary counts the new image's task runs.
IMAGE_DIGEST = "IMAGE_DIGEST"


# --- Role commands (container `command`, run from APP_WORKDIR, no shell) ---------------------
_WORKER_COMMAND_PREFIX = ["celery", "--app", "config", "worker"]


def web_command() -> list[str]:
    return ["gunicorn", "--config", "config/gunicorn.py", "config.wsgi"]


def worker_command(
    pool: str,
    queues: Sequence[str],
    concurrency: int,
    prefetch_multiplier: int = 1,
    max_memory_per_child_mib: int = 0,
) -> list[str]:
    """The worker of one pool; the settings' prefetch multiplier (1) unless the pool asks for more,
    and a per-process memory limit (Celery takes KiB) if the pool sets one."""
    if not queues:
        raise ValueError(f"worker pool {pool!r} serves no queue")
    command = [
        *_WORKER_COMMAND_PREFIX,
        "--queues",
        ",".join(queues),
        "--concurrency",
        str(concurrency),
        "--hostname",
        f"{pool}@%h",
    ]
    if prefetch_multiplier != 1:
        command += ["--prefetch-multiplier", str(prefetch_multiplier)]
    if max_memory_per_child_mib:
        command += ["--max-memory-per-child", str(max_memory_per_child_mib * 1024)]
    return command


def beat_command() -> list[str]:
    # The scheduler (celery-redbeat, lock-based) is chosen in settings, not on the command line.
    return ["celery", "--app", "config", "beat"]


def migrate_command() -> list[str]:
    # `migrate` under a PostgreSQL advisory lock with a short lock_timeout (see app/core).
    return ["python", "manage.py", "locked_migrate", "--noinput"]


def release_state_command(*flags: str) -> list[str]:
    """What the image releases (tasks, queues, Beat, migrations) as marked lines: the release gate
    runs it with the migrate task definition before migrating (--applied, --live)."""
    return ["python", "manage.py", "release_state", *flags]


def preview_tenant_command(
    action: str, connection_limit: int | None = None, database_url_secret: str | None = None
) -> list[str]:
    """Creates (`create`, with the role's CONNECTION LIMIT) or drops (`drop`) a thin preview's role,
    database and broker keys on its base, from ADMIN_DATABASE_URL, REDIS_URL, REDIS_KEY_PREFIX and
    the preview's DATABASE_URL (read from the secret `database_url_secret`, else the variable);
    `orphans` lists what previews no longer kept left on the base."""
    command = ["python", "manage.py", "preview_tenant", action]
    if connection_limit is not None:
        command += ["--connection-limit", str(connection_limit)]
    if database_url_secret is not None:
        command += ["--database-url-secret", database_url_secret]
    return command


def queue_metrics_command() -> list[str]:
    return ["python", "manage.py", "publish_queue_metrics"]


def role_of(command: Sequence[str]) -> Role:
    """The role a container command runs; raises ValueError for a command of no role."""
    fixed = {
        Role.WEB: web_command(),
        Role.BEAT: beat_command(),
        Role.MIGRATE: migrate_command(),
        Role.QUEUE_METRICS: queue_metrics_command(),
    }
    for role, role_command in fixed.items():
        if list(command) == role_command:
            return role
    if list(command[:4]) == _WORKER_COMMAND_PREFIX:
        return Role.WORKER
    raise ValueError(f"no role runs the command {list(command)}")
