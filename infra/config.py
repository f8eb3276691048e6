"""The stack configuration: read once, validated completely, then frozen.

`validate()` is a pure function from the raw key/value pairs (as the Pulumi CLI hands them to the
program: strings, JSON for lists) to a `StackConfig`. It checks every key before the program
declares a single resource and raises one `StackConfigError` that lists every bad key, the value
given and what is allowed, so a user fixes a stack file in one round trip instead of one
half-created stack per mistake. Defaults live in Pulumi.yaml only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import yaml

from infra.fargate import describe_task_sizes, is_valid_task_size
from infra.scaling import ScalingParameters

PROJECT_FILE = Path(__file__).resolve().parents[1] / "Pulumi.yaml"
NAT_MODES = ("none", "single", "per_az")
POSTGRES_MAJOR_VERSIONS = (13, 14, 15, 16, 17)
# ElastiCache engine -> major versions with a known parameter group family.
CACHE_ENGINE_MAJOR_VERSIONS = {"redis": (6, 7), "valkey": (7, 8)}
IMAGE_PLATFORMS = {"linux/amd64": "X86_64", "linux/arm64": "ARM64"}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# The only values CloudWatch Logs accepts for retentionInDays.
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
FARGATE_MAX_STOP_TIMEOUT_SECONDS = 120
POOL_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
CERTIFICATE_ARN_PATTERN = r"(arn:aws[\w-]*:acm:[\w-]+:\d{12}:certificate/[\w-]+)?"
QUEUE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
# The schemes of django-environ's EMAIL_URL that deliver mail (or log it, for a stack without SMTP).
EMAIL_URL_PATTERN = r"((smtp|smtps|smtp\+tls|smtp\+ssl)://\S+|consolemail://)?"
# Values of these keys are never shown in an error message.
SECRET_KEYS = frozenset({"emailUrl"})
CELERY_CANNOT_USE_CLUSTER = (
    "Celery's Redis transport (kombu) sends multi-key commands that Redis Cluster rejects with "
    "CROSSSLOT, so the broker must be a replication group with cluster mode disabled"
)


@dataclass(frozen=True)
class ConfigProblem:
    key: str
    value: object
    allowed: str

    def __str__(self) -> str:
        if self.value is _MISSING:
            shown = "(missing)"
        elif self.key in SECRET_KEYS:
            shown = "(secret value hidden)"
        else:
            shown = json.dumps(self.value, default=str)
        return f"{self.key}: got {shown}; allowed: {self.allowed}"


class StackConfigError(ValueError):
    """Every problem found in the stack configuration, one line per key."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"Invalid stack configuration ({len(problems)} problem(s)):\n{lines}")

    @property
    def keys(self) -> list[str]:
        return [problem.key for problem in self.problems]


@dataclass(frozen=True)
class WorkerPool:
    name: str
    queues: tuple[str, ...]
    concurrency: int
    cpu: int
    memory: int
    min_count: int
    max_count: int
    spot: bool
    target_latency_seconds: int  # how long a new message may wait before the pool should grow
    task_seconds: float  # typical task duration of the pool's queues


@dataclass(frozen=True)
class StackConfig:
    ephemeral: bool
    nat_mode: str
    db_engine_version: str
    db_instance_class: str
    db_allocated_storage: int
    db_backup_retention_days: int
    db_multi_az: bool
    db_deletion_protection: bool
    redis_engine: str
    redis_engine_version: str
    redis_node_type: str
    redis_replicas: int
    redis_snapshot_retention_days: int
    image_context: str
    image_dockerfile: str
    image_platform: str
    ecr_keep_images: int
    django_settings_module: str
    log_level: str
    email_url: str  # secret (SMTP credentials); empty: emails go to the log
    default_from_email: str
    web_cpu: int
    web_memory: int
    web_desired_count: int
    web_spot: bool
    certificate_arn: str
    domain_name: str
    alb_idle_timeout_seconds: int
    alb_deletion_protection: bool
    alb_access_logs: bool
    gunicorn_timeout_seconds: int
    worker_pools: tuple[WorkerPool, ...]
    beat_enabled: bool
    beat_spot: bool
    beat_cpu: int
    beat_memory: int
    task_soft_time_limit_seconds: int
    task_time_limit_seconds: int
    visibility_timeout_seconds: int
    worker_stop_timeout_seconds: int
    periodic_heartbeat_seconds: int
    migrate_timeout_seconds: int
    queue_metrics_interval_seconds: int
    scale_in_quiet_minutes: int
    scale_in_cooldown_seconds: int
    scale_out_cooldown_seconds: int
    queue_age_alarm_seconds: int
    log_retention_days: int
    container_insights: bool
    alarm_email: str
    web_5xx_alarm_percent: int
    db_free_storage_alarm_percent: int
    redis_memory_alarm_percent: int
    beat_alarm_minutes: int

    def scaling_parameters(self, pool: WorkerPool) -> ScalingParameters:
        """How `pool` scales on its queue length (infra/scaling.py turns this into policies)."""
        return _scaling_parameters(pool, vars(self))

    @property
    def db_parameter_group_family(self) -> str:
        return f"postgres{_major(self.db_engine_version)}"

    @property
    def redis_parameter_group_family(self) -> str:
        major = _major(self.redis_engine_version)
        if self.redis_engine == "redis" and major == 6:
            return "redis6.x"
        return f"{self.redis_engine}{major}"

    @property
    def cpu_architecture(self) -> str:
        return IMAGE_PLATFORMS[self.image_platform]

    @property
    def https(self) -> bool:
        return bool(self.certificate_arn)


def _major(version: str) -> int:
    return int(version.split(".")[0])


class _Missing:
    def __repr__(self) -> str:
        return "(missing)"


_MISSING: Any = _Missing()


class _Reader:
    """Reads typed values from the raw config and records a problem instead of stopping.

    Each reader returns None for a bad value, so checks that combine several keys run only on
    values that are themselves valid and never report a consequence of an earlier mistake.
    """

    def __init__(self, raw: Mapping[str, object]) -> None:
        self.raw = raw
        self.problems: list[ConfigProblem] = []
        self.known_keys: set[str] = set()

    def report(self, key: str, value: object, allowed: str) -> None:
        self.problems.append(ConfigProblem(key, value, allowed))

    def _get(self, key: str) -> object:
        self.known_keys.add(key)
        return self.raw.get(key, _MISSING)

    def unknown_keys(self) -> None:
        for key in sorted(set(self.raw) - self.known_keys):
            self.report(key, self.raw[key], f"no such key; known keys: {', '.join(sorted(self.known_keys))}")

    def boolean(self, key: str) -> bool | None:
        value = self._get(key)
        parsed = _parse_bool(value)
        if parsed is None:
            self.report(key, value, "true or false")
        return parsed

    def integer(self, key: str, low: int, high: int | None = None) -> int | None:
        value = self._get(key)
        return self._integer_value(key, value, low, high)

    def _integer_value(self, key: str, value: object, low: int, high: int | None) -> int | None:
        parsed = _parse_int(value)
        in_range = parsed is not None and parsed >= low and (high is None or parsed <= high)
        if not in_range:
            self.report(
                key,
                value,
                f"an integer from {low} to {high}" if high is not None else f"an integer of at least {low}",
            )
            return None
        return parsed

    def choice(self, key: str, choices: tuple[str, ...] | list[str]) -> str | None:
        value = self._get(key)
        if value not in choices:
            self.report(key, value, ", ".join(choices))
            return None
        return str(value)

    def integer_choice(self, key: str, choices: tuple[int, ...]) -> int | None:
        value = self._get(key)
        parsed = _parse_int(value)
        if parsed not in choices:
            self.report(key, value, ", ".join(str(choice) for choice in choices))
            return None
        return parsed

    def string(self, key: str, pattern: str, allowed: str) -> str | None:
        value = self._get(key)
        if not isinstance(value, str) or not re.fullmatch(pattern, value):
            self.report(key, value, allowed)
            return None
        return value

    def refused(self, key: str, reason: str) -> None:
        """A boolean that must stay false; `reason` says why."""
        enabled = self.boolean(key)
        if enabled:
            self.report(key, self._get(key), f"false ({reason})")

    def worker_pools(self, key: str) -> tuple[WorkerPool, ...] | None:
        value = self._get(key)
        pools = _parse_json(value) if isinstance(value, str) else value
        if not isinstance(pools, list) or not pools:
            self.report(
                key,
                value,
                "a non-empty list of {name, queues, concurrency, cpu, memory, minCount, maxCount, spot, "
                "targetLatencySeconds, taskSeconds}",
            )
            return None
        parsed = [self._worker_pool(f"{key}[{index}]", pool) for index, pool in enumerate(pools)]
        names = [pool.name for pool in parsed if pool is not None]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            self.report(key, value, f"unique pool names (repeated: {', '.join(duplicates)})")
        if any(pool is None for pool in parsed) or duplicates:
            return None
        return tuple(pool for pool in parsed if pool is not None)

    def _worker_pool(self, key: str, pool: object) -> WorkerPool | None:
        fields = (
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
        if not isinstance(pool, dict) or set(pool) != set(fields):
            self.report(key, pool, f"an object with exactly the fields {', '.join(fields)}")
            return None
        errors_before = len(self.problems)
        name = pool["name"]
        if not isinstance(name, str) or not POOL_NAME_PATTERN.fullmatch(name):
            self.report(f"{key}.name", name, "1-20 lower-case letters, digits or '-', starting with a letter")
        queues = pool["queues"]
        if (
            not isinstance(queues, list)
            or not queues
            or not all(isinstance(queue, str) and QUEUE_NAME_PATTERN.fullmatch(queue) for queue in queues)
            or len(set(queues)) != len(queues)
        ):
            self.report(f"{key}.queues", queues, "a non-empty list of distinct queue names")
        concurrency = self._integer_value(f"{key}.concurrency", pool["concurrency"], 1, 64)
        cpu = self._integer_value(f"{key}.cpu", pool["cpu"], 256, 16384)
        memory = self._integer_value(f"{key}.memory", pool["memory"], 512, 122880)
        if cpu is not None and memory is not None and not is_valid_task_size(cpu, memory):
            self.report(f"{key}.cpu/memory", [cpu, memory], f"a Fargate task size ({describe_task_sizes()})")
        min_count = self._integer_value(f"{key}.minCount", pool["minCount"], 0, 100)
        max_count = self._integer_value(f"{key}.maxCount", pool["maxCount"], 1, 100)
        if min_count is not None and max_count is not None and min_count > max_count:
            self.report(f"{key}.minCount", min_count, f"at most maxCount ({max_count})")
        spot = _parse_bool(pool["spot"])
        if spot is None:
            self.report(f"{key}.spot", pool["spot"], "true or false")
        target_latency = self._integer_value(
            f"{key}.targetLatencySeconds", pool["targetLatencySeconds"], 1, 86400
        )
        task_seconds = pool["taskSeconds"]
        if isinstance(task_seconds, bool) or not isinstance(task_seconds, int | float) or task_seconds <= 0:
            self.report(f"{key}.taskSeconds", task_seconds, "a positive number of seconds")
            task_seconds = None
        if len(self.problems) > errors_before:
            return None
        return WorkerPool(
            name=name,
            queues=tuple(queues),
            concurrency=concurrency,
            cpu=cpu,
            memory=memory,
            min_count=min_count,
            max_count=max_count,
            spot=bool(spot),
            target_latency_seconds=target_latency,
            task_seconds=float(task_seconds),
        )


def _parse_bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    return {"true": True, "false": False}.get(value) if isinstance(value, str) else None


def _parse_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return None


def _parse_json(value: str) -> object:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return None


def validate(raw: Mapping[str, object], project_root: Path | None = None) -> StackConfig:
    """Builds the stack config from raw values (bare keys), or raises listing every problem.

    With `project_root`, the image build paths (relative to it) must also exist.
    """
    read = _Reader(raw)
    postgres_majors = ", ".join(str(major) for major in POSTGRES_MAJOR_VERSIONS)
    values: dict[str, Any] = {
        "ephemeral": read.boolean("ephemeral"),
        "nat_mode": read.choice("natMode", NAT_MODES),
        "db_engine_version": read.string(
            "dbEngineVersion", r"\d+(\.\d+)?", f"MAJOR or MAJOR.MINOR with major {postgres_majors}"
        ),
        "db_instance_class": read.string(
            "dbInstanceClass", r"db\.[a-z0-9-]+\.[a-z0-9]+", "an RDS class like db.t4g.micro"
        ),
        "db_allocated_storage": read.integer("dbAllocatedStorage", 20, 65536),
        "db_backup_retention_days": read.integer("dbBackupRetentionDays", 1, 35),
        "db_multi_az": read.boolean("dbMultiAz"),
        "db_deletion_protection": read.boolean("dbDeletionProtection"),
        "redis_engine": read.choice("redisEngine", tuple(CACHE_ENGINE_MAJOR_VERSIONS)),
        "redis_engine_version": read.string("redisEngineVersion", r"\d+\.\d+", "MAJOR.MINOR, e.g. 7.1"),
        "redis_node_type": read.string(
            "redisNodeType", r"cache\.[a-z0-9-]+\.[a-z0-9]+", "an ElastiCache node type like cache.t4g.micro"
        ),
        "redis_replicas": read.integer("redisReplicas", 0, 5),
        "redis_snapshot_retention_days": read.integer("redisSnapshotRetentionDays", 0, 35),
        "image_context": read.string("imageContext", r"\S+", "a path to the Docker build context"),
        "image_dockerfile": read.string("imageDockerfile", r"\S+", "a path to the Dockerfile"),
        "image_platform": read.choice("imagePlatform", tuple(IMAGE_PLATFORMS)),
        "ecr_keep_images": read.integer("ecrKeepImages", 1, 1000),
        "django_settings_module": read.string(
            "djangoSettingsModule", r"[A-Za-z_][\w.]*", "a dotted Python module path"
        ),
        "log_level": read.choice("logLevel", LOG_LEVELS),
        "email_url": read.string(
            "emailUrl",
            EMAIL_URL_PATTERN,
            "empty, or an EMAIL_URL like smtp+tls://user:password@smtp.example.com:587 "
            "(smtp, smtps, smtp+tls, smtp+ssl) set with `pulumi config set --secret emailUrl ...`",
        ),
        "default_from_email": read.string(
            "defaultFromEmail", r"[^@\s]+@[^@\s]+\.[^@\s]+", "an email address like no-reply@example.com"
        ),
        "web_cpu": read.integer("webCpu", 256, 16384),
        "web_memory": read.integer("webMemory", 512, 122880),
        "web_desired_count": read.integer("webDesiredCount", 0, 100),
        "web_spot": read.boolean("webSpot"),
        "certificate_arn": read.string(
            "certificateArn", CERTIFICATE_ARN_PATTERN, "empty, or an ACM certificate ARN"
        ),
        "domain_name": read.string(
            "domainName",
            r"(([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,})?",
            "empty, or a lower-case host name like app.example.com",
        ),
        "alb_idle_timeout_seconds": read.integer("albIdleTimeoutSeconds", 1, 4000),
        "alb_deletion_protection": read.boolean("albDeletionProtection"),
        "alb_access_logs": read.boolean("albAccessLogs"),
        "gunicorn_timeout_seconds": read.integer("gunicornTimeoutSeconds", 1, 3600),
        "worker_pools": read.worker_pools("workerPools"),
        "beat_enabled": read.boolean("beatEnabled"),
        "beat_spot": read.boolean("beatSpot"),
        "beat_cpu": read.integer("beatCpu", 256, 16384),
        "beat_memory": read.integer("beatMemory", 512, 122880),
        "task_soft_time_limit_seconds": read.integer("taskSoftTimeLimitSeconds", 1),
        "task_time_limit_seconds": read.integer("taskTimeLimitSeconds", 1),
        "visibility_timeout_seconds": read.integer("visibilityTimeoutSeconds", 1),
        "worker_stop_timeout_seconds": read.integer(
            "workerStopTimeoutSeconds", 2, FARGATE_MAX_STOP_TIMEOUT_SECONDS
        ),
        "periodic_heartbeat_seconds": read.integer("periodicHeartbeatSeconds", 1, 86400),
        "migrate_timeout_seconds": read.integer("migrateTimeoutSeconds", 60, 3600),
        "queue_metrics_interval_seconds": read.integer("queueMetricsIntervalSeconds", 10, 300),
        "scale_in_quiet_minutes": read.integer("scaleInQuietMinutes", 1, 1440),
        "scale_in_cooldown_seconds": read.integer("scaleInCooldownSeconds", 0, 3600),
        "scale_out_cooldown_seconds": read.integer("scaleOutCooldownSeconds", 0, 3600),
        "queue_age_alarm_seconds": read.integer("queueAgeAlarmSeconds", 10, 86400),
        "log_retention_days": read.integer_choice("logRetentionDays", LOG_RETENTION_DAYS),
        "container_insights": read.boolean("containerInsights"),
        "alarm_email": read.string(
            "alarmEmail", r"([^@\s]+@[^@\s]+\.[^@\s]+)?", "empty, or an e-mail address to send alarms to"
        ),
        "web_5xx_alarm_percent": read.integer("web5xxAlarmPercent", 1, 100),
        "db_free_storage_alarm_percent": read.integer("dbFreeStorageAlarmPercent", 1, 90),
        "redis_memory_alarm_percent": read.integer("redisMemoryAlarmPercent", 10, 100),
        "beat_alarm_minutes": read.integer("beatAlarmMinutes", 1, 60),
    }
    read.refused("redisClusterMode", CELERY_CANNOT_USE_CLUSTER)
    read.refused("redisServerless", "ElastiCache Serverless is a Redis Cluster: " + CELERY_CANNOT_USE_CLUSTER)
    read.unknown_keys()
    _check_across_keys(read, values)
    if project_root is not None:
        _check_image_paths(read, values, project_root)
    if read.problems:
        raise StackConfigError(read.problems)
    return StackConfig(**values)


def _check_across_keys(read: _Reader, values: dict[str, Any]) -> None:
    """Rules that combine keys; each runs only when the values it combines are valid on their own."""

    def valid(*names: str) -> bool:
        return all(values[name] is not None for name in names)

    if valid("db_engine_version") and _major(values["db_engine_version"]) not in POSTGRES_MAJOR_VERSIONS:
        read.report(
            "dbEngineVersion",
            values["db_engine_version"],
            f"major version {', '.join(str(major) for major in POSTGRES_MAJOR_VERSIONS)}",
        )
    if valid("redis_engine", "redis_engine_version"):
        engine, version = values["redis_engine"], values["redis_engine_version"]
        majors = CACHE_ENGINE_MAJOR_VERSIONS[engine]
        if _major(version) not in majors:
            read.report(
                "redisEngineVersion",
                version,
                f"for {engine}, major version {' or '.join(str(major) for major in majors)}",
            )
    sizes = describe_task_sizes()
    for role in ("web", "beat"):
        cpu, memory = values[f"{role}_cpu"], values[f"{role}_memory"]
        if valid(f"{role}_cpu", f"{role}_memory") and not is_valid_task_size(cpu, memory):
            read.report(f"{role}Cpu/{role}Memory", [cpu, memory], f"a Fargate task size ({sizes})")
    soft, hard = values["task_soft_time_limit_seconds"], values["task_time_limit_seconds"]
    visibility = values["visibility_timeout_seconds"]
    if valid("task_soft_time_limit_seconds", "task_time_limit_seconds") and soft >= hard:
        read.report("taskSoftTimeLimitSeconds", soft, f"less than taskTimeLimitSeconds ({hard})")
    if valid("task_time_limit_seconds", "visibility_timeout_seconds") and visibility <= hard:
        read.report(
            "visibilityTimeoutSeconds",
            visibility,
            f"more than taskTimeLimitSeconds ({hard}), or long tasks are delivered twice",
        )
    request, idle = values["gunicorn_timeout_seconds"], values["alb_idle_timeout_seconds"]
    if valid("gunicorn_timeout_seconds", "alb_idle_timeout_seconds") and idle <= request:
        read.report("albIdleTimeoutSeconds", idle, f"more than gunicornTimeoutSeconds ({request})")
    if values["ephemeral"]:
        for key, name in (
            ("dbDeletionProtection", "db_deletion_protection"),
            ("albDeletionProtection", "alb_deletion_protection"),
        ):
            if values[name]:
                read.report(key, True, "false in an ephemeral stack (`pulumi destroy` must always succeed)")
    scaling_keys = (
        "queue_metrics_interval_seconds",
        "scale_in_quiet_minutes",
        "scale_in_cooldown_seconds",
        "scale_out_cooldown_seconds",
        "queue_age_alarm_seconds",
    )
    if valid("worker_pools", *scaling_keys):
        for index, pool in enumerate(values["worker_pools"]):
            try:
                _scaling_parameters(pool, values)
            except ValueError as error:
                read.report(f"workerPools[{index}]", pool.name, str(error))
    if values["certificate_arn"] == "" and values["domain_name"]:
        read.report(
            "domainName",
            values["domain_name"],
            "empty unless certificateArn is set (a custom domain is served over HTTPS)",
        )


def _scaling_parameters(pool: WorkerPool, values: Mapping[str, Any]) -> ScalingParameters:
    return ScalingParameters(
        min_workers=pool.min_count,
        max_workers=pool.max_count,
        worker_concurrency=pool.concurrency,
        target_latency_seconds=pool.target_latency_seconds,
        task_seconds=pool.task_seconds,
        publish_interval_seconds=values["queue_metrics_interval_seconds"],
        scale_in_quiet_minutes=values["scale_in_quiet_minutes"],
        scale_in_cooldown_seconds=values["scale_in_cooldown_seconds"],
        scale_out_cooldown_seconds=values["scale_out_cooldown_seconds"],
        queue_age_alarm_seconds=values["queue_age_alarm_seconds"],
    )


def _check_image_paths(read: _Reader, values: dict[str, Any], project_root: Path) -> None:
    context, dockerfile = values["image_context"], values["image_dockerfile"]
    if context is not None and not (project_root / context).is_dir():
        read.report("imageContext", context, f"a directory relative to {project_root}")
    if dockerfile is not None and not (project_root / dockerfile).is_file():
        read.report("imageDockerfile", dockerfile, f"a file relative to {project_root}")


def declared_config_keys() -> tuple[str, ...]:
    """This project's config keys, as Pulumi.yaml declares them (the single list of keys)."""
    project = yaml.safe_load(PROJECT_FILE.read_text())
    return tuple(key for key in project["config"] if ":" not in key)


def load_stack_config() -> StackConfig:
    """Reads every declared key the way the CLI provides it (strings, JSON for lists), then validates."""
    config = pulumi.Config()
    raw = {key: value for key in declared_config_keys() if (value := config.get(key)) is not None}
    return validate(raw, PROJECT_FILE.parent)
