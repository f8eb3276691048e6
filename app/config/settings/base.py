"""Settings shared by every profile.

Everything that differs between deployments comes from the environment (12-factor). The variable
names are the ones in docs/app.md and infra/app_contract.py. The profiles (production, test, local)
import this module and add only what is specific to them.
"""

import re
import ssl
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

from config.settings.media import default_storage, media_root
from core.admin_fence import admin_networks
from core.logging import JSON_FORMATTER
from core.schedules import check_beat_schedule
from core.settings_checks import check_settings

env = environ.Env()

BASE_DIR = Path(__file__).resolve().parents[2]

# --- Core ---------------------------------------------------------------------------------------
SECRET_KEY = env.str("DJANGO_SECRET_KEY")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "core",
    "django_ratelimit",
    "signups",
    "queuemetrics",
    "attachments",
]

MIDDLEWARE = [
    # First: the ALB health check sends the target's IP as Host and plain HTTP, so /healthz must be
    # answered before host validation and the HTTPS redirect.
    "core.middleware.LivenessMiddleware",
    "core.middleware.RequestIdMiddleware",
    # Before anything routes or reads the session: outside ADMIN_ALLOWED_CIDRS the admin is a 404.
    "core.admin_fence.AdminFenceMiddleware",
    # Every answer under /api/ is JSON, errors and outages included (503 + Retry-After).
    "core.middleware.ApiErrorMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # After authentication: it tells a failed admin sign-in from a successful one.
    "core.login_throttle.AdminLoginThrottleMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Request bodies above this size get 413 from the API (see signups.views).
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024

# --- Database -----------------------------------------------------------------------------------
# Query arguments of the URL (e.g. ?sslmode=verify-full&sslrootcert=...) become connection options.
DATABASES = {"default": env.db_url("DATABASE_URL")}
# Persistent connections, checked before reuse: a PostgreSQL restart or failover costs one
# reconnect instead of a stream of errors.
DATABASES["default"]["CONN_MAX_AGE"] = 60
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# An unreachable database fails a request (or /readyz) in seconds instead of hanging.
DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
# Every app query waits at most this long for a lock, and runs at most this long, so a migration or
# a long transaction holding a lock costs a signup a prompt 503 with Retry-After (core.middleware),
# not a thread held for the whole lock. The statement bound is below gunicorn's timeout. The
# migrate role sets its own (core/management/commands/locked_migrate.py), and a worker's tasks are
# bounded by their hard time limit instead (core.celery_lifecycle).
DATABASE_LOCK_TIMEOUT_MS = env.int("DATABASE_LOCK_TIMEOUT_MS", default=2000)
DATABASE_STATEMENT_TIMEOUT_MS = env.int("DATABASE_STATEMENT_TIMEOUT_MS", default=20000)
DATABASES["default"]["OPTIONS"]["options"] = " ".join(
    filter(
        None,
        [
            DATABASES["default"]["OPTIONS"].get("options", ""),
            f"-c lock_timeout={DATABASE_LOCK_TIMEOUT_MS}",
            f"-c statement_timeout={DATABASE_STATEMENT_TIMEOUT_MS}",
        ],
    )
)

# --- Static files (served by whitenoise, collected at image build time) ------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": default_storage(env),
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Media files (user uploads; see config/settings/media.py) -----------------------------------
MEDIA_URL = "media/"
MEDIA_ROOT = media_root(env)
# Uploads above Django's in-memory limit are spooled to the tmpfs /tmp before they go to storage.
ATTACHMENT_MAX_BYTES = 10 * 1024 * 1024

# --- Email --------------------------------------------------------------------------------------
# EMAIL_URL holds the SMTP credentials, e.g. smtp+tls://user:password@smtp.example.com:587.
# Without it, messages are written to the log, which is enough to try the product.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="no-reply@example.com")
# Seconds per SMTP operation. Also bounds how long a delivery stopped by the soft time limit or a
# worker shutdown still waits for the mail server (see core.settings_checks).
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)


# --- Redis (Celery broker, result backend, Beat schedule and lock) ------------------------------
def redis_ssl_options(redis_url: str) -> dict | None:
    """SSL options for a rediss:// URL (None for redis://), always verifying the certificate.

    kombu connects to a bare rediss:// URL *without* verifying the server certificate, so the
    options are always passed explicitly. A URL asking for less than verification is refused.
    """
    url = urlsplit(redis_url)
    if url.scheme != "rediss":
        return None
    query = parse_qs(url.query)
    cert_reqs = query.get("ssl_cert_reqs", ["required"])[0]
    if cert_reqs != "required":
        raise ImproperlyConfigured(
            f"REDIS_URL asks for ssl_cert_reqs={cert_reqs}; only ssl_cert_reqs=required (lower case) "
            "is accepted, because anything else skips the server certificate check"
        )
    options: dict = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    if "ssl_ca_certs" in query:
        options["ssl_ca_certs"] = query["ssl_ca_certs"][0]
    return options


REDIS_URL = env.str("REDIS_URL")
REDIS_SSL_OPTIONS = redis_ssl_options(REDIS_URL)
# Timeouts for every Redis connection: a half-open socket after a failover must not hang forever.
REDIS_SOCKET_CONNECT_TIMEOUT = 5
REDIS_SOCKET_TIMEOUT = 10
REDIS_HEALTH_CHECK_INTERVAL = 25

# --- Celery -------------------------------------------------------------------------------------
# Queue names are part of the environment contract (infra runs one worker pool per queue set).
CELERY_DEFAULT_QUEUE_NAME = "default"
CELERY_EMAIL_QUEUE_NAME = "email"

CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=270)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
# ECS stopTimeout of the worker container (Fargate allows at most 120 s).
CELERY_WORKER_STOP_TIMEOUT = env.int("CELERY_WORKER_STOP_TIMEOUT", default=120)
# Seconds before that deadline at which a stopping worker gives up waiting for its running tasks and
# puts them back on the queue (cold shutdown), so they are restored before the SIGKILL.
CELERY_WORKER_COLD_SHUTDOWN_MARGIN = 15
# Failed deliveries of the welcome email (mail server down, 4xx replies, timeouts) are retried with
# capped exponential backoff for a window of hours; only a permanent rejection (5xx) or the end of the
# window ends them. Waits that long must not be broker countdowns (a countdown longer than the
# visibility timeout is delivered twice), so the next attempt is stored in the signup's row and the
# periodic sweep publishes it when it falls due (signups.tasks).
WELCOME_EMAIL_RETRY_WINDOW_SECONDS = env.int("WELCOME_EMAIL_RETRY_WINDOW_SECONDS", default=24 * 3600)
WELCOME_EMAIL_RETRY_BACKOFF_SECONDS = env.int("WELCOME_EMAIL_RETRY_BACKOFF_SECONDS", default=30)
WELCOME_EMAIL_RETRY_MAX_DELAY_SECONDS = env.int("WELCOME_EMAIL_RETRY_MAX_DELAY_SECONDS", default=1800)
# An unreachable database (restart, RDS failover of 60-120 s) is retried every few seconds for
# 3 minutes; these short countdowns are not delivery attempts.
WELCOME_EMAIL_DATABASE_RETRY_DELAY = 5
WELCOME_EMAIL_MAX_DATABASE_RETRIES = 36
# Celery's Django fixup closes the database connection around every task unless this is set, so a
# worker would open a new connection (and TLS session on RDS) per task and CONN_MAX_AGE would never
# apply. With it, core.celery_lifecycle applies CONN_MAX_AGE / CONN_HEALTH_CHECKS around each task,
# as Django does around each request (bench/pipeline.py measured 1.75-2.5x throughput on short tasks).
CELERY_DB_REUSE_MAX = 1000

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_BROKER_USE_SSL = REDIS_SSL_OPTIONS
CELERY_REDIS_BACKEND_USE_SSL = REDIS_SSL_OPTIONS
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    # kombu >= 5.7: look for messages of dead workers every 10 s instead of about every 100 s.
    "unacked_restore_interval": 10,
    "unacked_restore_throttle": 1,
    "socket_connect_timeout": REDIS_SOCKET_CONNECT_TIMEOUT,
    "socket_timeout": REDIS_SOCKET_TIMEOUT,
    "socket_keepalive": True,
    "retry_on_timeout": True,
    "health_check_interval": REDIS_HEALTH_CHECK_INTERVAL,
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = REDIS_SOCKET_CONNECT_TIMEOUT
CELERY_REDIS_SOCKET_TIMEOUT = REDIS_SOCKET_TIMEOUT
CELERY_REDIS_SOCKET_KEEPALIVE = True
CELERY_REDIS_RETRY_ON_TIMEOUT = True
CELERY_REDIS_BACKEND_HEALTH_CHECK_INTERVAL = REDIS_HEALTH_CHECK_INTERVAL
CELERY_RESULT_EXPIRES = 24 * 3600
# Outcomes are recorded in PostgreSQL. Results of tasks that opt in (`ignore_result=False`) go to
# the backend; publishing an ignored-result task never waits on it, so a Redis outage costs the
# web request a bounded publish retry instead of the backend's 20 s reconnect loop.
CELERY_TASK_IGNORE_RESULT = True

CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None  # workers keep reconnecting; the health check decides
# Survive a Redis failover ("UNBLOCKED ... master -> replica", READONLY) instead of exiting.
CELERY_BROKER_CHANNEL_ERROR_RETRY = True
# Poison messages: a queue entry that is not a message, or is over TASK_MAX_MESSAGE_BYTES, goes to
# the dead-letter list instead of ending the worker (core.transport); a message is run at most
# TASK_MAX_DELIVERIES times (its runs killed, or out of memory), and its next delivery goes to the
# dead-letter list too (core.dead_letters).
CELERY_BROKER_TRANSPORT = "core.transport:Transport"
TASK_MAX_DELIVERIES = env.int("TASK_MAX_DELIVERIES", default=3)
# A larger message is not run either: tasks take references (a signup id), not data, and a huge
# argument would be copied into every log line about the task.
TASK_MAX_MESSAGE_BYTES = 256 * 1024

CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE

# Messages are acknowledged when the task ends, and a task whose process dies goes back to the queue.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Tasks running when the connection to Redis is lost run to the end, and their acknowledgement (a
# delete by delivery tag, valid on any connection) removes the message once Redis is back. Cancelling
# them instead would kill each one mid-delivery, and announcing the cancellation writes to Redis
# while it is down, which ends the worker; the cancelled message would then wait for the visibility
# timeout in `unacked`. A message put back while its task still runs is harmless: the row lock and
# status check of the email task make the second run a no-op.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# ECS task scale-in protection (core.task_protection): on while tasks run, off after the worker has
# been idle this long, so scale-in and deployments stop idle workers only. A short pause between
# tasks keeps the protection instead of turning it off and on (each change is an ECS API call).
WORKER_PROTECTION_IDLE_SECONDS = env.int("WORKER_PROTECTION_IDLE_SECONDS", default=30)
# SIGTERM stays a warm shutdown; core.worker escalates to a cold one before the stop timeout.
CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT = 0.0
CELERY_WORKER_MAX_TASKS_PER_CHILD = 1000
# Logging is configured by Django (LOGGING below) for every role.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

CELERY_TASK_DEFAULT_QUEUE = CELERY_DEFAULT_QUEUE_NAME
CELERY_TASK_ROUTES = {"signups.tasks.send_welcome_email": {"queue": CELERY_EMAIL_QUEUE_NAME}}

# Publishing from a request or a sweep waits under 2 s whatever state Redis is in (refusing,
# half-open during a failover, slow): short socket timeouts, no redis-py retry, one kombu retry. After
# a failed publish, the process skips publishing for a few seconds, so a broker outage cannot tie up
# every web thread; the signup is kept and the sweep publishes it (core.broker).
BROKER_PUBLISH_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": 0.4,
    "socket_timeout": 0.4,
    "retry_on_timeout": False,
}
BROKER_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0.1,
    "interval_step": 0,
    "interval_max": 0.1,
}
BROKER_PUBLISH_COOL_DOWN_SECONDS = 5

# Beat: a lock in Redis keeps a second Beat from firing; the schedule lives in Redis, not on disk.
CELERY_BEAT_SCHEDULER = "core.beat:HeartbeatRedBeatScheduler"
CELERY_BEAT_MAX_LOOP_INTERVAL = 5
CELERY_REDBEAT_REDIS_URL = REDIS_URL
CELERY_REDBEAT_REDIS_USE_SSL = REDIS_SSL_OPTIONS
CELERY_REDBEAT_REDIS_OPTIONS = {
    "socket_connect_timeout": REDIS_SOCKET_CONNECT_TIMEOUT,
    "socket_timeout": REDIS_SOCKET_TIMEOUT,
    "socket_keepalive": True,
    "retry_on_timeout": True,
    "health_check_interval": REDIS_HEALTH_CHECK_INTERVAL,
    # Ride out a Redis failover for this long before Beat gives up (and ECS restarts it).
    "retry_period": 30,
}
# A killed Beat holds the lock this long at most (redbeat's default is 25 minutes).
CELERY_REDBEAT_LOCK_TIMEOUT = 20

PERIODIC_HEARTBEAT_SECONDS = env.int("PERIODIC_HEARTBEAT_SECONDS", default=60)
# The sweep publishes welcome emails that are due: retries whose time has come, signups the broker
# refused at enqueue time (once they are this old), and messages lost in a Redis failover.
SIGNUP_SWEEP_SECONDS = env.int("SIGNUP_SWEEP_SECONDS", default=30)
SIGNUP_REQUEUE_AFTER_SECONDS = env.int("SIGNUP_REQUEUE_AFTER_SECONDS", default=300)
# Each entry declares its policy in its options (core.schedules, docs/app.md#periodic-runs).
CELERY_BEAT_SCHEDULE = {
    # Every occurrence counts: one missed while Beat was away runs once when Beat is back.
    "record-heartbeat": {
        "task": "signups.tasks.record_heartbeat",
        "schedule": PERIODIC_HEARTBEAT_SECONDS,
        "options": {"policy": {"catch_up": "once", "overlap": "skip"}},
    },
    # The next sweep covers whatever a skipped one would have published: a sweep that cannot start
    # within one interval is skipped, and two never run at once.
    "requeue-stale-signups": {
        "task": "signups.tasks.requeue_stale_signups",
        "schedule": SIGNUP_SWEEP_SECONDS,
        "options": {"policy": {"catch_up": "skip", "deadline": SIGNUP_SWEEP_SECONDS, "overlap": "skip"}},
    },
}
# Application gauges the queue-metrics publisher sends with the queue metrics (queuemetrics.schema).
QUEUE_METRICS_APP_READERS = ["signups.metrics.welcome_email_gauges"]

# --- Abuse: signups per client address (django-ratelimit over the Redis cache) -----------------
SIGNUP_RATE_LIMIT = env.str("SIGNUP_RATE_LIMIT", default="10/m")
# One IPv6 /48 (65,536 of the /64s counted as clients) together (signups.ceilings).
SIGNUP_PREFIX_RATE_LIMIT = env.str("SIGNUP_PREFIX_RATE_LIMIT", default="60/m")
# Signups a minute one web process takes, counted in its memory: it holds while Redis cannot count.
SIGNUP_PROCESS_RATE_LIMIT = env.int("SIGNUP_PROCESS_RATE_LIMIT", default=300)
# The client address is the hop the ALB appends to X-Forwarded-For (core.client).
RATELIMIT_IP_META_KEY = "core.client.client_ip"
# Fail open: with Redis down the cache cannot count, and the publish fails fast anyway (503, the
# signup kept for the sweep). Refusing every signup instead would turn a cache outage into a signup
# outage. django-redis returns nothing instead of raising when IGNORE_EXCEPTIONS is on, which is
# what django-ratelimit reads as "the cache failed".
RATELIMIT_FAIL_OPEN = True
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "cache",
        "OPTIONS": {
            # A rate-limit lookup must not hold a request when Redis is half-open.
            "SOCKET_CONNECT_TIMEOUT": 0.1,
            "SOCKET_TIMEOUT": 0.1,
            "IGNORE_EXCEPTIONS": True,
            "CONNECTION_POOL_KWARGS": {**(REDIS_SSL_OPTIONS or {}), "retry_on_timeout": False},
        },
    }
}

# --- Redis key prefix: a preview's slice of the shared broker ------------------------------------
# Previews share their base's Redis; every key the app writes or reads starts with the stack's prefix
# (`pr-<N>:`; empty in a full stack, which keeps its key names): kombu's queues, bindings and
# `unacked` (global_keyprefix), the result backend, the Beat lock and schedule (Redbeat), the cache and
# with it the signup rate limiter, the schedule records (core.schedule_state) and the task stats.
REDIS_KEY_PREFIX_PATTERN = r"^([a-z0-9][a-z0-9-]{0,40}:)?$"


def redis_key_prefix(value: str) -> str:
    """The prefix, refused at start unless it matches REDIS_KEY_PREFIX_PATTERN (no glob characters,
    so `SCAN MATCH <prefix>*` selects exactly the stack's keys)."""
    if not re.fullmatch(REDIS_KEY_PREFIX_PATTERN, value):
        raise ImproperlyConfigured(
            f"REDIS_KEY_PREFIX must be empty or lower-case letters, digits and '-' ending with ':' "
            f"(e.g. 'pr-12:'), matching {REDIS_KEY_PREFIX_PATTERN}; got {value!r}"
        )
    return value


REDIS_KEY_PREFIX = redis_key_prefix(env.str("REDIS_KEY_PREFIX", default=""))
CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = REDIS_KEY_PREFIX
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS["global_keyprefix"] = REDIS_KEY_PREFIX
CELERY_REDBEAT_KEY_PREFIX = f"{REDIS_KEY_PREFIX}redbeat:"  # Redbeat's default is "redbeat:"
CACHES["default"]["KEY_PREFIX"] = f"{REDIS_KEY_PREFIX}cache"

# --- The admin: who reaches it, and how often one may try a password ----------------------------
# Networks whose clients reach /admin (core.admin_fence), comma-separated; the stack sets the web
# config's adminAllowedCidrs. Empty: closed to everyone. Unset (a laptop, tests): this machine only.
ADMIN_ALLOWED_NETWORKS = admin_networks(
    env.list("ADMIN_ALLOWED_CIDRS", default=["127.0.0.1/32", "::1/128"])
)
# Failed admin sign-ins, counted in Redis (core.login_throttle): past either limit within the
# window, every attempt gets 429 until the window ends.
ADMIN_LOGIN_MAX_FAILURES_PER_CLIENT = 20
ADMIN_LOGIN_MAX_FAILURES_PER_USER = 5
ADMIN_LOGIN_WINDOW_SECONDS = 15 * 60

# Files whose age the container health checks read (infra/app_contract.py).
WORKER_HEARTBEAT_FILE = env.str("WORKER_HEARTBEAT_FILE", default="/tmp/celery-worker-heartbeat")  # noqa: S108
BEAT_HEARTBEAT_FILE = env.str("BEAT_HEARTBEAT_FILE", default="/tmp/celery-beat-heartbeat")  # noqa: S108
HEARTBEAT_TOUCH_SECONDS = 15

# The image this process runs (sha256:...), set by the stack; workers log it with each task's outcome.
IMAGE_DIGEST = env.str("IMAGE_DIGEST", default="")

# --- Logging: JSON lines on stdout for every role -----------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "core.logging.ContextFilter"},
        "rejected_host": {"()": "core.logging.RejectedHostFilter"},
    },
    "formatters": {"json": JSON_FORMATTER},
    "handlers": {
        "stdout": {
            "class": "core.logging.RedactedStreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "json",
            "filters": ["context"],
        },
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        # Django's request logger repeats what the access log and our own error logs already say.
        "django.server": {"level": "WARNING"},
        # A request for a host we do not serve is the client's mistake (or a scanner), not ours.
        "django.security.DisallowedHost": {"filters": ["rejected_host"]},
        # billiard (Celery's process pool) logs here without propagating, e.g. a pool process killed
        # at the hard time limit; with no handler of its own Python would print it as plain text.
        "multiprocessing": {"handlers": ["stdout"], "level": "WARNING", "propagate": False},
        # Task outcomes are what a release canary reads: logged whatever LOG_LEVEL says.
        "queuemetrics.outcomes": {"level": "INFO"},
    },
}
check_settings(vars())
check_beat_schedule(CELERY_BEAT_SCHEDULE)
