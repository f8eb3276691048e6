"""What the app's roles run with: Django settings, Celery limits, worker pools and Beat."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from infra.config.reader import ConfigReader, parse_bool, parse_number
from infra.services.task_sizes import TaskSize, check_task_size, read_task_size
from queuemetrics.schema import POOL_NAME_PATTERN, POOL_NAME_RULE

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LOG_LEVELS: tuple[LogLevel, ...] = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FARGATE_MAX_STOP_TIMEOUT_SECONDS = 120
QUEUE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
# The schemes of django-environ's EMAIL_URL that deliver mail (or log it, for a stack without SMTP).
EMAIL_URL_PATTERN = r"((smtp|smtps|smtp\+tls|smtp\+ssl)://\S+|consolemail://)?"
EMAIL_ADDRESS_PATTERN = r"[^@\s]+@[^@\s]+\.[^@\s]+"
# django-ratelimit's rate: a count per period (s, m, h, d), the period optionally a multiple.
RATE_PATTERN = r"\d+/\d*[smhd]"
WORKER_POOL_FIELDS = (
    "name",
    "queues",
    "concurrency",
    "cpu",
    "memory",
    "minCount",
    "maxCount",
    "spot",
    "targetLatencySeconds",
    "taskSeconds",
)
# Fields a pool object may leave out, with the value it then gets.
OPTIONAL_WORKER_POOL_FIELDS: dict[str, object] = {"prefetchMultiplier": 1}
# Messages each worker process reserves ahead (Celery's worker_prefetch_multiplier). Above 1 only for
# pools of short tasks that can wait for a visibility timeout when their worker is killed.
MAX_PREFETCH_MULTIPLIER = 16


@dataclass(frozen=True)
class AppConfig:
    """Django settings every role shares."""

    django_settings_module: str
    log_level: LogLevel
    email_url: str  # secret (SMTP credentials); empty: emails go to the log
    default_from_email: str

    @classmethod
    def read(cls, read: ConfigReader) -> AppConfig:
        return cls(
            django_settings_module=read.string(
                "djangoSettingsModule", r"[A-Za-z_][\w.]*", "a dotted Python module path"
            ),
            log_level=read.choice("logLevel", LOG_LEVELS),
            email_url=read.string(
                "emailUrl",
                EMAIL_URL_PATTERN,
                "empty, or an EMAIL_URL like smtp+tls://user:password@smtp.example.com:587 "
                "(smtp, smtps, smtp+tls, smtp+ssl) set with `pulumi config set --secret emailUrl ...`",
            ),
            default_from_email=read.string(
                "defaultFromEmail", EMAIL_ADDRESS_PATTERN, "an email address like no-reply@example.com"
            ),
        )


@dataclass(frozen=True)
class SignupsConfig:
    """How the app delivers welcome emails through mail-server outages, and guards its signup API."""

    email_timeout_seconds: int  # per SMTP operation; below the soft-to-hard time limit gap
    retry_backoff_seconds: int  # the first retry's delay, doubled per attempt
    retry_max_delay_seconds: int  # the cap of that doubling
    retry_window_seconds: int  # after this, a delivery that keeps failing is marked failed
    sweep_seconds: int  # how often Beat's sweep re-drives due retries and unpublished signups
    requeue_after_seconds: int  # a signup never handed to the broker is re-driven after this
    rate_limit: str  # signups per client address, e.g. 10/m

    @classmethod
    def read(cls, read: ConfigReader) -> SignupsConfig:
        config = cls(
            email_timeout_seconds=read.integer("emailTimeoutSeconds", 1, 14),
            retry_backoff_seconds=read.integer("welcomeEmailRetryBackoffSeconds", 1, 3600),
            retry_max_delay_seconds=read.integer("welcomeEmailRetryMaxDelaySeconds", 1, 86400),
            retry_window_seconds=read.integer("welcomeEmailRetryWindowSeconds", 600, 604800),
            sweep_seconds=read.integer("signupSweepSeconds", 5, 300),
            requeue_after_seconds=read.integer("signupRequeueAfterSeconds", 30, 3600),
            rate_limit=read.string(
                "signupRateLimit", RATE_PATTERN, "a count per period, e.g. 10/m, 100/h or 5/10s"
            ),
        )
        backoff, longest = config.retry_backoff_seconds, config.retry_max_delay_seconds
        window = config.retry_window_seconds
        if (
            read.valid("welcomeEmailRetryBackoffSeconds", "welcomeEmailRetryMaxDelaySeconds")
            and longest < backoff
        ):
            read.report(
                "welcomeEmailRetryMaxDelaySeconds",
                longest,
                f"at least welcomeEmailRetryBackoffSeconds ({backoff})",
            )
        if (
            read.valid("welcomeEmailRetryMaxDelaySeconds", "welcomeEmailRetryWindowSeconds")
            and window < longest
        ):
            read.report(
                "welcomeEmailRetryWindowSeconds",
                window,
                f"at least welcomeEmailRetryMaxDelaySeconds ({longest})",
            )
        return config


@dataclass(frozen=True)
class CeleryLimits:
    """soft limit < hard limit < visibility timeout (RELIABILITY.md rules 2 and 11)."""

    soft_time_limit_seconds: int
    time_limit_seconds: int
    visibility_timeout_seconds: int

    @classmethod
    def read(cls, read: ConfigReader) -> CeleryLimits:
        limits = cls(
            soft_time_limit_seconds=read.integer("taskSoftTimeLimitSeconds", 1),
            time_limit_seconds=read.integer("taskTimeLimitSeconds", 1),
            visibility_timeout_seconds=read.integer("visibilityTimeoutSeconds", 1),
        )
        soft, hard = limits.soft_time_limit_seconds, limits.time_limit_seconds
        if read.valid("taskSoftTimeLimitSeconds", "taskTimeLimitSeconds") and soft >= hard:
            read.report("taskSoftTimeLimitSeconds", soft, f"less than taskTimeLimitSeconds ({hard})")
        visibility = limits.visibility_timeout_seconds
        if read.valid("taskTimeLimitSeconds", "visibilityTimeoutSeconds") and visibility <= hard:
            read.report(
                "visibilityTimeoutSeconds",
                visibility,
                f"more than taskTimeLimitSeconds ({hard}), or long tasks are delivered twice",
            )
        return limits


@dataclass(frozen=True)
class WorkerPool:
    name: str
    queues: tuple[str, ...]
    concurrency: int
    size: TaskSize
    min_count: int
    max_count: int
    spot: bool
    target_latency_seconds: int  # how long a new message may wait before the pool should grow
    task_seconds: float  # typical task duration of the pool's queues
    # Messages each worker process reserves beyond the one it runs: 1 (the default) costs a broker
    # round trip per task; more trades it for throughput on short tasks, and a killed worker's
    # reserved messages then wait for the visibility timeout.
    prefetch_multiplier: int = 1

    @classmethod
    def read(cls, read: ConfigReader, key: str, pool: dict[str, object]) -> WorkerPool:
        """One pool object with the WORKER_POOL_FIELDS and any OPTIONAL_WORKER_POOL_FIELDS; problems
        are keyed `key.field`."""
        pool = {**OPTIONAL_WORKER_POOL_FIELDS, **pool}
        name = pool["name"]
        if not isinstance(name, str) or not POOL_NAME_PATTERN.fullmatch(name):
            read.report(f"{key}.name", name, POOL_NAME_RULE)
        queues = pool["queues"]
        if not _is_queue_list(queues):
            read.report(f"{key}.queues", queues, "a non-empty list of distinct queue names")
        size = TaskSize(
            read.integer_value(f"{key}.cpu", pool["cpu"], 256, 16384),
            read.integer_value(f"{key}.memory", pool["memory"], 512, 122880),
        )
        check_task_size(read, f"{key}.cpu/memory", size, f"{key}.cpu", f"{key}.memory")
        min_count = read.integer_value(f"{key}.minCount", pool["minCount"], 0, 100)
        max_count = read.integer_value(f"{key}.maxCount", pool["maxCount"], 1, 100)
        if read.valid(f"{key}.minCount", f"{key}.maxCount") and min_count > max_count:
            read.report(f"{key}.minCount", min_count, f"at most maxCount ({max_count})")
        spot = parse_bool(pool["spot"])
        if spot is None:
            read.report(f"{key}.spot", pool["spot"], "true or false")
        task_seconds = parse_number(pool["taskSeconds"])
        if task_seconds is None or task_seconds <= 0:
            read.report(f"{key}.taskSeconds", pool["taskSeconds"], "a positive number of seconds")
        return cls(
            name=str(name),
            queues=tuple(str(queue) for queue in queues) if isinstance(queues, list) else (),
            concurrency=read.integer_value(f"{key}.concurrency", pool["concurrency"], 1, 64),
            size=size,
            min_count=min_count,
            max_count=max_count,
            spot=bool(spot),
            target_latency_seconds=read.integer_value(
                f"{key}.targetLatencySeconds", pool["targetLatencySeconds"], 1, 86400
            ),
            task_seconds=task_seconds or 1.0,
            prefetch_multiplier=read.integer_value(
                f"{key}.prefetchMultiplier", pool["prefetchMultiplier"], 1, MAX_PREFETCH_MULTIPLIER
            ),
        )


def _is_queue_list(queues: object) -> bool:
    return (
        isinstance(queues, list)
        and bool(queues)
        and all(isinstance(queue, str) and QUEUE_NAME_PATTERN.fullmatch(queue) for queue in queues)
        and len(set(queues)) == len(queues)
    )


@dataclass(frozen=True)
class WorkersConfig:
    pools: tuple[WorkerPool, ...]
    stop_timeout_seconds: int  # ECS stopTimeout of worker containers

    @classmethod
    def read(cls, read: ConfigReader) -> WorkersConfig:
        return cls(
            pools=_read_pools(read, "workerPools"),
            stop_timeout_seconds=read.integer(
                "workerStopTimeoutSeconds", 2, FARGATE_MAX_STOP_TIMEOUT_SECONDS
            ),
        )


def _read_pools(read: ConfigReader, key: str) -> tuple[WorkerPool, ...]:
    value = read.json_value(key)
    if not isinstance(value, list) or not value:
        read.report(key, read.raw(key), f"a non-empty list of {{{', '.join(WORKER_POOL_FIELDS)}}}")
        return ()
    required, optional = set(WORKER_POOL_FIELDS), set(OPTIONAL_WORKER_POOL_FIELDS)
    pools: list[WorkerPool] = []
    for index, pool in enumerate(value):
        if not isinstance(pool, dict) or not required <= set(pool) <= required | optional:
            read.report(
                f"{key}[{index}]",
                pool,
                f"an object with exactly the fields {', '.join(WORKER_POOL_FIELDS)}, and optionally "
                f"{', '.join(OPTIONAL_WORKER_POOL_FIELDS)}",
            )
            continue
        pools.append(
            WorkerPool.read(read, f"{key}[{index}]", {str(field): item for field, item in pool.items()})
        )
    names = [pool.name for pool in pools]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        read.report(key, read.raw(key), f"unique pool names (repeated: {', '.join(repeated)})")
    owners: dict[str, str] = {}
    for pool in pools:
        for queue in pool.queues:
            if queue in owners and owners[queue] != pool.name:
                read.report(key, queue, f"each queue in one pool only (in {owners[queue]} and {pool.name})")
            owners.setdefault(queue, pool.name)
    return tuple(pools)


@dataclass(frozen=True)
class BeatConfig:
    enabled: bool  # exactly one Celery Beat task
    spot: bool
    size: TaskSize
    periodic_heartbeat_seconds: int  # interval of the recorded heartbeat periodic task

    @classmethod
    def read(cls, read: ConfigReader) -> BeatConfig:
        return cls(
            enabled=read.boolean("beatEnabled"),
            spot=read.boolean("beatSpot"),
            size=read_task_size(read, "beatCpu", "beatMemory"),
            periodic_heartbeat_seconds=read.integer("periodicHeartbeatSeconds", 1, 86400),
        )
