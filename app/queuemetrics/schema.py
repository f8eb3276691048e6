"""The queue metrics as CloudWatch sees them: namespace, metric names, dimensions, units.

This is the one definition shared by the publisher (in the app image) and the Pulumi program,
whose scaling policies and alarms must name exactly the metrics the publisher writes. The program
imports it from the installed project (pyproject.toml), without Django, so it imports nothing beyond
the standard library.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

# Also the default of the stack config key queueMetricsIntervalSeconds (Pulumi.yaml).
DEFAULT_INTERVAL_SECONDS = 10

# Header stamped on every task message when it is published (epoch seconds, float).
SENT_AT_HEADER = "sent_at"
# Redis list where the workers of one pool leave summaries of the tasks they ran (queuemetrics.task_stats)
# for the publisher, which drains it every interval; behind the broker's own key prefix.
_TASK_STATS_KEY = "queuemetrics:task-stats:{pool}"

POOL_DIMENSION = "Pool"
QUEUE_DIMENSION = "Queue"
# A Beat schedule entry, by its name in CELERY_BEAT_SCHEDULE.
ENTRY_DIMENSION = "Entry"

_NAMESPACE_SUFFIX = "CeleryQueues"
# CloudWatch namespaces: these characters, at most 255 of them, never starting with "AWS/".
_NAMESPACE_PATTERN = re.compile(r"^[A-Za-z0-9.\-_/#:]{1,255}$")
# Dimension values are free text for CloudWatch, but pool names also become resource names
# (the stack config refuses any other pool name).
POOL_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
POOL_NAME_RULE = "1-20 lower-case letters, digits or '-', starting with a letter"


@dataclass(frozen=True)
class MetricDefinition:
    name: str
    unit: str  # a CloudWatch StandardUnit
    dimensions: tuple[str, ...]
    description: str


QUEUE_WAITING = MetricDefinition(
    "QueueWaiting",
    "Count",
    (POOL_DIMENSION, QUEUE_DIMENSION),
    "Messages waiting in one queue, all priority lists included.",
)
QUEUE_OLDEST_AGE = MetricDefinition(
    "QueueOldestMessageAge",
    "Seconds",
    (POOL_DIMENSION, QUEUE_DIMENSION),
    "Seconds since the oldest waiting message of one queue was published (0 when empty).",
)
POOL_OLDEST_AGE = MetricDefinition(
    "PoolOldestMessageAge",
    "Seconds",
    (POOL_DIMENSION,),
    "The largest QueueOldestMessageAge over the pool's queues.",
)
POOL_IN_FLIGHT = MetricDefinition(
    "PoolInFlight",
    "Count",
    (POOL_DIMENSION,),
    "Messages delivered to a worker and not yet acknowledged: running, prefetched, ETA-held.",
)
POOL_BACKLOG = MetricDefinition(
    "PoolBacklog",
    "Count",
    (POOL_DIMENSION,),
    "Waiting plus in-flight messages of the pool's queues.",
)
POOL_DESIRED_WORKERS = MetricDefinition(
    "PoolDesiredWorkers",
    "Count",
    (POOL_DIMENSION,),
    "Desired task count of the pool's ECS service.",
)
POOL_RUNNING_WORKERS = MetricDefinition(
    "PoolRunningWorkers",
    "Count",
    (POOL_DIMENSION,),
    "Running task count of the pool's ECS service.",
)
BACKLOG_PER_WORKER = MetricDefinition(
    "BacklogPerWorker",
    "Count",
    (POOL_DIMENSION,),
    "PoolBacklog / max(PoolDesiredWorkers, 1): the target-tracking metric.",
)
WAKE_UP_BACKLOG = MetricDefinition(
    "WakeUpBacklog",
    "Count",
    (POOL_DIMENSION,),
    "PoolBacklog while the pool has no workers (desired 0), else 0: drives the wake-up policy.",
)

# Measured by the workers themselves (queuemetrics.task_stats), published as statistic sets: the
# numbers the pool's configured taskSeconds and targetLatencySeconds are checked against.
POOL_TASK_RUN_SECONDS = MetricDefinition(
    "PoolTaskRunSeconds",
    "Seconds",
    (POOL_DIMENSION,),
    "How long the pool's tasks ran, from start to end in the worker (one sample per task).",
)
POOL_QUEUE_WAIT_SECONDS = MetricDefinition(
    "PoolQueueWaitSeconds",
    "Seconds",
    (POOL_DIMENSION,),
    "How long the pool's tasks waited from publish (sent_at) to start; countdown/ETA tasks left out.",
)

# Application gauges, one value per stack (no dimension), read from PostgreSQL by the publisher.
WELCOME_EMAILS_FAILED = MetricDefinition(
    "WelcomeEmailsFailed",
    "Count",
    (),
    "Signups whose welcome email failed for good (a permanent rejection, or the retry window ended) "
    "and was not re-sent (manage.py failed_welcome_emails).",
)
WELCOME_EMAILS_RETRYING = MetricDefinition(
    "WelcomeEmailsRetrying",
    "Count",
    (),
    "Queued signups with at least one failed delivery attempt: the mail server is refusing or down.",
)

# Read from the broker's Redis with the queues (core.dead_letters): one value per stack.
DEAD_LETTERS = MetricDefinition(
    "DeadLetters",
    "Count",
    (),
    "Task messages in the dead-letter list: delivered too often without finishing (killed, out of "
    "memory), too large, or not messages at all. Listed and replayed with manage.py dead_letters.",
)

# Per Beat schedule entry (core.schedules), read from the entry's records in Redis (core.schedule_state).
PERIODIC_TASK_SECONDS_SINCE_SUCCESS = MetricDefinition(
    "PeriodicTaskSecondsSinceSuccess",
    "Seconds",
    (ENTRY_DIMENSION,),
    "Seconds since a run of the entry last succeeded (before its first success: since Beat first "
    "scheduled it). Not published while Beat has never scheduled the entry.",
)
PERIODIC_TASK_SKIPPED_RUNS = MetricDefinition(
    "PeriodicTaskSkippedRuns",
    "Count",
    (ENTRY_DIMENSION,),
    "Runs of the entry skipped since the last interval: missed while Beat could not send them and not "
    "made up (its catch_up policy), or not started within the entry's deadline.",
)
PERIODIC_TASK_OVERLAPPED_RUNS = MetricDefinition(
    "PeriodicTaskOverlappedRuns",
    "Count",
    (ENTRY_DIMENSION,),
    "Runs of the entry not started since the last interval because its previous run still ran "
    "(overlap: skip).",
)

QUEUE_METRICS = (QUEUE_WAITING, QUEUE_OLDEST_AGE)
POOL_METRICS = (
    POOL_OLDEST_AGE,
    POOL_IN_FLIGHT,
    POOL_BACKLOG,
    POOL_DESIRED_WORKERS,
    POOL_RUNNING_WORKERS,
    BACKLOG_PER_WORKER,
    WAKE_UP_BACKLOG,
)
# Published for a pool only in intervals in which its workers finished tasks.
TASK_METRICS = (POOL_TASK_RUN_SECONDS, POOL_QUEUE_WAIT_SECONDS)
# One value per stack: the gauges of the app, and the dead letters (read with the queues).
APP_METRICS = (WELCOME_EMAILS_FAILED, WELCOME_EMAILS_RETRYING, DEAD_LETTERS)
# Published every interval for every entry of the Beat schedule.
ENTRY_METRICS = (
    PERIODIC_TASK_SECONDS_SINCE_SUCCESS,
    PERIODIC_TASK_SKIPPED_RUNS,
    PERIODIC_TASK_OVERLAPPED_RUNS,
)
# Metrics that need the ECS worker counts; a tick without them still publishes the rest.
WORKER_COUNT_METRICS = (POOL_DESIRED_WORKERS, POOL_RUNNING_WORKERS, BACKLOG_PER_WORKER, WAKE_UP_BACKLOG)


def metric_namespace(project: str, stack: str) -> str:
    """The CloudWatch namespace of one stack's queue metrics, e.g. ``djcelery/dev/CeleryQueues``."""
    namespace = f"{project}/{stack}/{_NAMESPACE_SUFFIX}"
    validate_namespace(namespace)
    return namespace


def validate_namespace(namespace: str) -> None:
    if not _NAMESPACE_PATTERN.match(namespace) or namespace.startswith("AWS/"):
        raise ValueError(
            f"invalid CloudWatch namespace {namespace!r}: use 1-255 of A-Z a-z 0-9 . - _ / # : "
            "and do not start with 'AWS/'"
        )


def dimensions(
    metric: MetricDefinition, pool: str | None = None, queue: str | None = None, entry: str | None = None
) -> dict[str, str]:
    """The dimension values of one metric, keyed by dimension name in the metric's order."""
    values = {POOL_DIMENSION: pool, QUEUE_DIMENSION: queue, ENTRY_DIMENSION: entry}
    missing = [name for name in metric.dimensions if values[name] is None]
    if missing:
        raise ValueError(f"metric {metric.name} needs dimension(s) {', '.join(missing)}")
    return {name: str(values[name]) for name in metric.dimensions}


# Beat entry names become a CloudWatch dimension value (ASCII only) and part of an alarm name
# (255 characters at most, with the stack's prefix).
ENTRY_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._/-]{0,199}$")
ENTRY_NAME_RULE = "1-200 ASCII letters, digits, spaces and . _ / -, starting with a letter or digit"

# An entry is stale when it has not succeeded for max(STALE_AFTER_PERIODS x its period,
# STALE_AFTER_MINIMUM_SECONDS): the defaults of the stack config keys scheduleAlarmPeriods and
# scheduleAlarmMinimumMinutes (Pulumi.yaml), and of `manage.py schedules`.
STALE_AFTER_PERIODS = 2
STALE_AFTER_MINIMUM_SECONDS = 300


def stale_after_seconds(
    period_seconds: float,
    periods: float = STALE_AFTER_PERIODS,
    minimum_seconds: float = STALE_AFTER_MINIMUM_SECONDS,
) -> float:
    """How long an entry with this period may go without a success before it is late.

    Two periods: one missed or failed run is already late by one period; the floor keeps entries
    that run every few seconds from being reported during a Beat restart.
    """
    return max(periods * period_seconds, minimum_seconds)


@dataclass(frozen=True)
class ScalingSignals:
    backlog_per_worker: float
    wake_up_backlog: int


def scaling_signals(backlog: int, desired_workers: int) -> ScalingSignals:
    """The two metrics the scaling policies act on, from one measurement of a pool.

    Dividing by the *desired* count (not the running one) lets target tracking converge in one
    step: it computes desired x metric / target = backlog / target, whereas workers still starting
    would inflate a per-running-worker metric and overshoot.
    """
    return ScalingSignals(
        backlog_per_worker=backlog / max(desired_workers, 1),
        wake_up_backlog=backlog if desired_workers == 0 else 0,
    )


@dataclass
class Summary:
    """Count, sum, minimum and maximum of some samples: a CloudWatch statistic set."""

    count: int = 0
    total: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)

    def merge(self, other: Summary) -> None:
        self.count += other.count
        self.total += other.total
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def statistic_values(self) -> dict[str, float]:
        """PutMetricData's StatisticValues."""
        return {
            "SampleCount": self.count,
            "Sum": self.total,
            "Minimum": self.minimum,
            "Maximum": self.maximum,
        }

    def encode(self) -> list[float]:
        return [self.count, self.total, self.minimum, self.maximum] if self.count else [0, 0.0, 0.0, 0.0]

    @classmethod
    def decode(cls, value: object) -> Summary:
        """The inverse of `encode`; raises ValueError for anything else."""
        if not isinstance(value, list) or len(value) != 4 or not all(
            isinstance(item, int | float) and math.isfinite(item) for item in value
        ):
            raise ValueError(f"not a summary: {value!r}")
        count, total, minimum, maximum = value
        if count < 0 or int(count) != count:
            raise ValueError(f"not a sample count: {count!r}")
        return cls(int(count), float(total), float(minimum), float(maximum)) if count else cls()


@dataclass
class TaskStats:
    """What a pool's workers measured over some tasks: run time and queue wait, in seconds."""

    run: Summary = field(default_factory=Summary)
    wait: Summary = field(default_factory=Summary)

    def merge(self, other: TaskStats) -> None:
        self.run.merge(other.run)
        self.wait.merge(other.wait)

    def encode(self) -> str:
        return json.dumps({"run": self.run.encode(), "wait": self.wait.encode()}, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str | bytes) -> TaskStats:
        try:
            record = json.loads(text)
            return cls(run=Summary.decode(record["run"]), wait=Summary.decode(record["wait"]))
        except (ValueError, TypeError, KeyError) as error:
            raise ValueError(f"not a task-stats record: {error}") from error


def task_stats_key(pool: str, key_prefix: str = "") -> str:
    """The Redis list where `pool`'s workers leave their TaskStats records for the publisher."""
    return key_prefix + _TASK_STATS_KEY.format(pool=pool)


@dataclass(frozen=True)
class PoolSpec:
    """One worker pool: the ECS service that consumes some queues, scaled as one."""

    pool: str
    queues: tuple[str, ...]
    service: str


def encode_pools(pools: Sequence[PoolSpec]) -> str:
    """The QUEUE_METRICS_POOLS value for the publisher's environment."""
    objects = [_pool_object(spec) for spec in pools]
    parse_pools_from_objects(objects)  # refuse here what the publisher would refuse at start-up
    return json.dumps(objects, separators=(",", ":"))


def parse_pools(text: str) -> tuple[PoolSpec, ...]:
    """Parse QUEUE_METRICS_POOLS: ``[{"pool": ..., "queues": [...], "service": ...}, ...]``."""
    try:
        objects = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"pools must be JSON: {error}") from error
    return parse_pools_from_objects(objects)


def parse_pools_from_objects(objects: object) -> tuple[PoolSpec, ...]:
    if not isinstance(objects, list) or not objects:
        raise ValueError('pools must be a non-empty JSON list of {"pool", "queues", "service"}')
    problems: list[str] = []
    pools: list[PoolSpec] = []
    seen_queues: dict[str, str] = {}
    for index, item in enumerate(objects):
        where = f"pools[{index}]"
        if not isinstance(item, dict) or set(item) != {"pool", "queues", "service"}:
            problems.append(f'{where} must have exactly the keys "pool", "queues", "service"')
            continue
        pool, queues, service = item["pool"], item["queues"], item["service"]
        if not isinstance(pool, str) or not POOL_NAME_PATTERN.match(pool):
            problems.append(f"{where}.pool {pool!r} must be {POOL_NAME_RULE}")
        if not isinstance(service, str) or not service:
            problems.append(f"{where}.service must be a non-empty string")
        if not isinstance(queues, list) or not queues or not all(isinstance(q, str) and q for q in queues):
            problems.append(f"{where}.queues must be a non-empty list of queue names")
            continue
        for queue in queues:
            # In-flight messages are attributed to a pool by queue, so a queue has one owner.
            if queue in seen_queues:
                problems.append(f"queue {queue!r} is in pool {seen_queues[queue]!r} and in {where}")
            seen_queues[queue] = str(pool)
        pools.append(PoolSpec(pool=pool, queues=tuple(queues), service=service))
    names = [spec.pool for spec in pools]
    problems += [f"pool {name!r} appears twice" for name in sorted({n for n in names if names.count(n) > 1})]
    if problems:
        raise ValueError("invalid pools: " + "; ".join(problems))
    return tuple(pools)


def _pool_object(spec: PoolSpec) -> dict[str, object]:
    return {"pool": spec.pool, "queues": list(spec.queues), "service": spec.service}
