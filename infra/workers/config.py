"""Worker pools: each pool's settings as the stack file names them, validated once, with what
follows from them (its service's key, its scaling policies) on the pool itself."""

from __future__ import annotations

import re
from dataclasses import dataclass

from infra.config.reader import ConfigReader, parse_bool, parse_number
from infra.services.task_sizes import TaskSize, check_task_size
from infra.workers.policies import PolicySet, PoolScaling, ScalingTimings, policy_set
from queuemetrics.schema import POOL_NAME_PATTERN, POOL_NAME_RULE

FARGATE_MAX_STOP_TIMEOUT_SECONDS = 120
QUEUE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
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
# Fields a pool object may leave out, with the value it then gets (None: the stack-wide key's).
OPTIONAL_WORKER_POOL_FIELDS: dict[str, object] = {
    "prefetchMultiplier": 1,
    "maxMemoryPerChildMiB": 0,
    "canaryMinutes": None,
}
# The longest worker canary: `pulumi up` waits for it, once per pool whose image changes.
MAX_CANARY_MINUTES = 60
# Messages each worker process reserves ahead (Celery's worker_prefetch_multiplier). Above 1 only for
# pools of short tasks that can wait for a visibility timeout when their worker is killed.
MAX_PREFETCH_MULTIPLIER = 16
# The smallest per-process memory limit: below it, a fresh Celery pool process is already over.
MIN_MEMORY_PER_CHILD_MIB = 64
# The stack-wide keys every pool's autoscaling reads.
SCALING_KEYS = (
    "queueMetricsIntervalSeconds",
    "scaleInQuietMinutes",
    "scaleInCooldownSeconds",
    "scaleOutCooldownSeconds",
    "queueAgeAlarmSeconds",
)


@dataclass(frozen=True)
class WorkerPoolConfig:
    """One `workerPools` entry: a service of Celery workers consuming its queues."""

    name: str
    queues: tuple[str, ...]
    size: TaskSize
    spot: bool
    # How the pool scales, from minCount, maxCount, concurrency, targetLatencySeconds and
    # taskSeconds (and the stack-wide timings): the one home of those numbers.
    scaling: PoolScaling
    stop_timeout_seconds: int  # ECS stopTimeout of the pool's containers (workerStopTimeoutSeconds)
    # Messages each worker process reserves beyond the one it runs: 1 (the default) costs a broker
    # round trip per task; more trades it for throughput on short tasks, and a killed worker's
    # reserved messages then wait for the visibility timeout.
    prefetch_multiplier: int = 1
    # A worker process whose resident memory passes this is replaced once its task ends (Celery's
    # --max-memory-per-child); 0: no limit.
    max_memory_per_child_mib: int = 0
    # Before the pool's service rolls to a new task definition, one task of it consumes the pool's
    # queues for this long and must not fail its tasks (infra/workers/canary.py); 0: no canary.
    canary_minutes: int = 0

    @property
    def service_key(self) -> str:
        """The logical name of the pool's service, also the end of its physical name."""
        return f"worker-{self.name}"

    @property
    def concurrency(self) -> int:
        return self.scaling.concurrency

    @property
    def policies(self) -> PolicySet:
        """What the pool's autoscaling deploys (policies.policy_set)."""
        return policy_set(self.scaling)


@dataclass(frozen=True)
class WorkersConfig:
    pools: tuple[WorkerPoolConfig, ...]
    timings: ScalingTimings  # stack-wide autoscaling timings, shared by every pool
    stop_timeout_seconds: int  # workerStopTimeoutSeconds: every pool's containers stop within it
    # A worker canary fails when more than this share of the tasks it ran did not succeed.
    canary_max_failure_percent: int = 20

    @property
    def consumed_queues(self) -> list[str]:
        return sorted({queue for pool in self.pools for queue in pool.queues})

    @classmethod
    def read(cls, read: ConfigReader) -> WorkersConfig:
        timings = ScalingTimings(
            publish_interval_seconds=read.integer("queueMetricsIntervalSeconds", 10, 300),
            scale_in_quiet_minutes=read.integer("scaleInQuietMinutes", 1, 1440),
            scale_in_cooldown_seconds=read.integer("scaleInCooldownSeconds", 0, 3600),
            scale_out_cooldown_seconds=read.integer("scaleOutCooldownSeconds", 0, 3600),
            queue_age_alarm_seconds=read.integer("queueAgeAlarmSeconds", 10, 86400),
        )
        stop_timeout = read.integer("workerStopTimeoutSeconds", 2, FARGATE_MAX_STOP_TIMEOUT_SECONDS)
        shared = PoolDefaults(
            timings, stop_timeout, read.integer("workerCanaryMinutes", 0, MAX_CANARY_MINUTES)
        )
        return cls(
            pools=_read_pools(read, "workerPools", shared),
            timings=timings,
            stop_timeout_seconds=stop_timeout,
            canary_max_failure_percent=read.integer("workerCanaryMaxFailurePercent", 1, 100),
        )


@dataclass(frozen=True)
class PoolDefaults:
    """The stack-wide keys every pool reads."""

    timings: ScalingTimings
    stop_timeout_seconds: int
    canary_minutes: int  # workerCanaryMinutes, unless the pool sets canaryMinutes


def _read_pool(
    read: ConfigReader, key: str, pool: dict[str, object], shared: PoolDefaults
) -> WorkerPoolConfig:
    """One pool object with the WORKER_POOL_FIELDS and any OPTIONAL_WORKER_POOL_FIELDS; problems
    are keyed `key.field`."""
    pool = {**OPTIONAL_WORKER_POOL_FIELDS, "canaryMinutes": shared.canary_minutes, **pool}
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
    spot = parse_bool(pool["spot"])
    if spot is None:
        read.report(f"{key}.spot", pool["spot"], "true or false")
    return WorkerPoolConfig(
        name=str(name),
        queues=tuple(str(queue) for queue in queues) if isinstance(queues, list) else (),
        size=size,
        spot=bool(spot),
        scaling=_read_scaling(read, key, pool, shared.timings),
        stop_timeout_seconds=shared.stop_timeout_seconds,
        prefetch_multiplier=read.integer_value(
            f"{key}.prefetchMultiplier", pool["prefetchMultiplier"], 1, MAX_PREFETCH_MULTIPLIER
        ),
        max_memory_per_child_mib=_read_memory_per_child(read, key, pool, size),
        canary_minutes=read.integer_value(
            f"{key}.canaryMinutes", pool["canaryMinutes"], 0, MAX_CANARY_MINUTES
        ),
    )


def _read_memory_per_child(read: ConfigReader, key: str, pool: dict[str, object], size: TaskSize) -> int:
    """0 (no limit), or a limit that a process can stay under and the task's memory can hold."""
    field, value = f"{key}.maxMemoryPerChildMiB", pool["maxMemoryPerChildMiB"]
    limit = read.integer_value(field, value, 0, 122880)
    if read.valid(field, f"{key}.memory") and limit and not MIN_MEMORY_PER_CHILD_MIB <= limit <= size.memory:
        read.report(
            field, value, f"0 (no limit), or {MIN_MEMORY_PER_CHILD_MIB} to the pool's memory ({size.memory})"
        )
    return limit


def _read_scaling(
    read: ConfigReader, key: str, pool: dict[str, object], timings: ScalingTimings
) -> PoolScaling:
    """The pool's scaling numbers; a combination that cannot scale is reported on the pool."""
    min_count = read.integer_value(f"{key}.minCount", pool["minCount"], 0, 100)
    max_count = read.integer_value(f"{key}.maxCount", pool["maxCount"], 1, 100)
    if read.valid(f"{key}.minCount", f"{key}.maxCount") and min_count > max_count:
        read.report(f"{key}.minCount", min_count, f"at most maxCount ({max_count})")
    task_seconds = parse_number(pool["taskSeconds"])
    if task_seconds is None or task_seconds <= 0:
        read.report(f"{key}.taskSeconds", pool["taskSeconds"], "a positive number of seconds")
    scaling = PoolScaling(
        min_count=min_count,
        max_count=max_count,
        concurrency=read.integer_value(f"{key}.concurrency", pool["concurrency"], 1, 64),
        target_latency_seconds=read.integer_value(
            f"{key}.targetLatencySeconds", pool["targetLatencySeconds"], 1, 86400
        ),
        task_seconds=task_seconds or 1.0,
        timings=timings,
    )
    if read.valid(key, *SCALING_KEYS) and scaling.target_backlog_per_worker < 1:
        read.report(key, pool["name"], scaling.too_short_for_one_message())
    return scaling


def _is_queue_list(queues: object) -> bool:
    return (
        isinstance(queues, list)
        and bool(queues)
        and all(isinstance(queue, str) and QUEUE_NAME_PATTERN.fullmatch(queue) for queue in queues)
        and len(set(queues)) == len(queues)
    )


def _read_pools(read: ConfigReader, key: str, shared: PoolDefaults) -> tuple[WorkerPoolConfig, ...]:
    value = read.json_value(key)
    if not isinstance(value, list) or not value:
        read.report(key, read.raw(key), f"a non-empty list of {{{', '.join(WORKER_POOL_FIELDS)}}}")
        return ()
    required, optional = set(WORKER_POOL_FIELDS), set(OPTIONAL_WORKER_POOL_FIELDS)
    pools: list[WorkerPoolConfig] = []
    for index, pool in enumerate(value):
        if not isinstance(pool, dict) or not required <= set(pool) <= required | optional:
            read.report(
                f"{key}[{index}]",
                pool,
                f"an object with exactly the fields {', '.join(WORKER_POOL_FIELDS)}, and optionally "
                f"{', '.join(OPTIONAL_WORKER_POOL_FIELDS)}",
            )
            continue
        fields = {str(field): item for field, item in pool.items()}
        pools.append(_read_pool(read, f"{key}[{index}]", fields, shared))
    _check_unique(read, key, pools)
    return tuple(pools)


def _check_unique(read: ConfigReader, key: str, pools: list[WorkerPoolConfig]) -> None:
    """Pool names are unique, and each queue is consumed by one pool only."""
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
