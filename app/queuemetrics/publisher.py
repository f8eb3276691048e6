"""Measure the Celery queues on the Redis broker and publish them to CloudWatch.

One tick reads, per worker pool: the waiting messages of each queue (every priority list), the
age of the oldest waiting message, the in-flight messages (kombu's `unacked` hash), the
pool's desired/running worker counts from ECS, and the run time and queue wait of the tasks its
workers finished since the last tick (queuemetrics.task_stats); per Beat schedule entry, the
seconds since its last success and the runs skipped or overlapped since the last tick
(core.schedule_state); the messages in the dead-letter list (core.dead_letters); and the
application's gauges (schema.APP_METRICS, e.g. failed welcome
emails). It then sends every datapoint in one batched
`PutMetricData` call. A tick that cannot read the broker publishes nothing: a made-up zero would
tell the scaling policies that the queue is empty. Gauges that cannot be read (database down) are left out.
"""

from __future__ import annotations

import enum
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from botocore.exceptions import BotoCoreError, ClientError

from core import dead_letters, schedule_state
from queuemetrics import schema

logger = logging.getLogger(__name__)

# PutMetricData accepts at most 1000 metrics per request.
MAX_DATUMS_PER_REQUEST = 1000
# DescribeServices accepts at most 10 services per request.
MAX_SERVICES_PER_REQUEST = 10
# After CloudWatch failures the loop waits interval x 2^failures, at most this long.
MAX_BACKOFF_SECONDS = 120.0
_UNACKED_SCAN_BATCH = 500


@dataclass(frozen=True)
class BrokerLayout:
    """Where kombu's Redis transport keeps a queue's messages (kombu.transport.redis.Channel)."""

    priority_steps: tuple[int, ...] = (0, 3, 6, 9)
    separator: str = "\x06\x16"
    key_prefix: str = ""
    unacked_key: str = "unacked"

    @classmethod
    def from_transport_options(cls, options: Mapping[str, Any]) -> BrokerLayout:
        """The layout a Celery app's `broker_transport_options` give its workers."""
        defaults = cls()
        return cls(
            priority_steps=tuple(options.get("priority_steps", defaults.priority_steps)),
            separator=options.get("sep", defaults.separator),
            key_prefix=options.get("global_keyprefix", defaults.key_prefix),
            unacked_key=options.get("unacked_key", defaults.unacked_key),
        )

    def queue_keys(self, queue: str) -> list[str]:
        # The lists kombu's Channel._size() counts: step 0 is the bare queue name.
        return [
            self.key_prefix + (queue if step == 0 else f"{queue}{self.separator}{step}")
            for step in self.priority_steps
        ]

    def binding_key(self, exchange: str) -> str:
        return f"{self.key_prefix}_kombu.binding.{exchange}"

    def task_stats_key(self, pool: str) -> str:
        return schema.task_stats_key(pool, self.key_prefix)


@dataclass(frozen=True)
class QueueReading:
    waiting: int
    # Header of the oldest waiting message; None when the queue is empty or no waiting
    # message carries the header (published by a producer that does not stamp it).
    oldest_sent_at: float | None


@dataclass(frozen=True)
class WorkerCount:
    desired: int
    running: int


class TickOutcome(enum.Enum):
    PUBLISHED = "published"
    BROKER_UNREACHABLE = "broker unreachable"
    CLOUDWATCH_FAILED = "cloudwatch failed"


def read_queues(client: redis.Redis, layout: BrokerLayout, queues: Iterable[str]) -> dict[str, QueueReading]:
    """Waiting count and oldest sent-at of each queue, in one pipelined round trip.

    kombu LPUSHes and BRPOPs, so the oldest message of each priority list is at index -1;
    the oldest of the queue is the oldest of those tails.
    """
    queue_keys = {queue: layout.queue_keys(queue) for queue in queues}
    pipe = client.pipeline(transaction=False)
    for keys in queue_keys.values():
        for key in keys:
            pipe.llen(key)
            pipe.lindex(key, -1)
    replies = iter(pipe.execute())
    readings = {}
    for queue, keys in queue_keys.items():
        waiting = 0
        sent_ats = []
        for _ in keys:
            length, tail = next(replies), next(replies)
            waiting += length
            sent_at = _sent_at(tail) if tail is not None else None
            if sent_at is not None:
                sent_ats.append(sent_at)
        readings[queue] = QueueReading(waiting=waiting, oldest_sent_at=min(sent_ats, default=None))
    return readings


def read_in_flight(client: redis.Redis, layout: BrokerLayout) -> Counter[str]:
    """Unacknowledged messages per queue.

    kombu keeps one `unacked` hash for all queues; each entry is [message, exchange,
    routing_key]. It is attributed to the queues its exchange binds that routing key to (the
    binding table kombu itself uses to restore it), which for Celery's default direct
    exchanges is the queue of the same name.
    """
    bindings: dict[str, list[tuple[str, str]]] = {}
    counts: Counter[str] = Counter()
    seen_tags = set()  # HSCAN may return an entry twice while the hash is resized
    for tag, raw in client.hscan_iter(layout.key_prefix + layout.unacked_key, count=_UNACKED_SCAN_BATCH):
        if tag in seen_tags:
            continue
        seen_tags.add(tag)
        try:
            _message, exchange, routing_key = json.loads(raw)
        except (ValueError, TypeError):
            logger.warning("skipping an unacked entry that is not a kombu message")
            continue
        if exchange not in bindings:
            bindings[exchange] = _binding_table(client, layout, exchange) if exchange else []
        bound = [queue for key, queue in bindings[exchange] if key == routing_key]
        counts.update(bound or [routing_key])
    return counts


def drain_task_stats(
    client: redis.Redis, layout: BrokerLayout, pools: Iterable[str]
) -> dict[str, schema.TaskStats]:
    """What each pool's workers measured since the last drain, read and emptied in one transaction
    (MULTI/EXEC: a record pushed meanwhile is in the next drain, never lost between the two)."""
    names = list(pools)
    pipe = client.pipeline(transaction=True)
    for pool in names:
        key = layout.task_stats_key(pool)
        pipe.lrange(key, 0, -1)
        pipe.delete(key)
    replies = pipe.execute()
    drained = {}
    for pool, records in zip(names, replies[::2], strict=True):
        stats = schema.TaskStats()
        for record in records:
            try:
                stats.merge(schema.TaskStats.decode(record))
            except ValueError as error:
                logger.warning("skipping a task-stats record of pool %s: %s", pool, error)
        drained[pool] = stats
    return drained


def read_worker_counts(ecs: Any, cluster: str, services: Sequence[str]) -> dict[str, WorkerCount]:
    """Desired and running task counts per ECS service name; unknown services are left out."""
    counts = {}
    for start in range(0, len(services), MAX_SERVICES_PER_REQUEST):
        chunk = list(services[start : start + MAX_SERVICES_PER_REQUEST])
        response = ecs.describe_services(cluster=cluster, services=chunk)
        for failure in response.get("failures", []):
            logger.warning("ECS has no service %s: %s", failure.get("arn"), failure.get("reason"))
        for service in response["services"]:
            counts[service["serviceName"]] = WorkerCount(
                desired=service["desiredCount"], running=service["runningCount"]
            )
    return counts


def metric_data(
    pools: Sequence[schema.PoolSpec],
    queues: Mapping[str, QueueReading],
    in_flight: Mapping[str, int],
    workers: Mapping[str, WorkerCount] | None,
    now: float,
) -> list[dict[str, Any]]:
    """The CloudWatch datapoints of one tick. `workers` is None when ECS could not be read."""
    timestamp = datetime.fromtimestamp(now, UTC)
    data: list[dict[str, Any]] = []

    def add(metric: schema.MetricDefinition, value: float, pool: str, queue: str | None = None) -> None:
        data.append(datum(metric, value, timestamp, pool, queue))

    for spec in pools:
        ages = []
        for queue in spec.queues:
            reading = queues[queue]
            add(schema.QUEUE_WAITING, reading.waiting, spec.pool, queue)
            age = _oldest_age(reading, now)
            if age is not None:
                add(schema.QUEUE_OLDEST_AGE, age, spec.pool, queue)
                ages.append(age)
        if ages:
            add(schema.POOL_OLDEST_AGE, max(ages), spec.pool)
        pool_in_flight = sum(in_flight.get(queue, 0) for queue in spec.queues)
        backlog = sum(queues[queue].waiting for queue in spec.queues) + pool_in_flight
        add(schema.POOL_IN_FLIGHT, pool_in_flight, spec.pool)
        add(schema.POOL_BACKLOG, backlog, spec.pool)
        count = (workers or {}).get(spec.service)
        if count is None:
            continue
        signals = schema.scaling_signals(backlog, count.desired)
        add(schema.POOL_DESIRED_WORKERS, count.desired, spec.pool)
        add(schema.POOL_RUNNING_WORKERS, count.running, spec.pool)
        add(schema.BACKLOG_PER_WORKER, signals.backlog_per_worker, spec.pool)
        add(schema.WAKE_UP_BACKLOG, signals.wake_up_backlog, spec.pool)
    return data


def task_stats_data(stats: Mapping[str, schema.TaskStats], now: float) -> list[dict[str, Any]]:
    """Statistic sets of the tasks each pool finished since the last tick (none for an idle pool)."""
    timestamp = datetime.fromtimestamp(now, UTC)
    data = []
    for pool, measured in stats.items():
        for metric, summary in (
            (schema.POOL_TASK_RUN_SECONDS, measured.run),
            (schema.POOL_QUEUE_WAIT_SECONDS, measured.wait),
        ):
            if summary.count:
                data.append(statistic_datum(metric, summary, timestamp, pool))
    return data


def schedule_data(records: Mapping[str, schedule_state.EntryRecord], now: float) -> list[dict[str, Any]]:
    """Per entry: seconds since its last success (left out while Beat has never scheduled it, so
    the entry's alarm sees missing data), and its skipped and overlapped runs since the last tick."""
    timestamp = datetime.fromtimestamp(now, UTC)
    data = []
    for entry, record in records.items():
        since_success = record.seconds_since_success(now)
        if since_success is not None:
            data.append(
                datum(schema.PERIODIC_TASK_SECONDS_SINCE_SUCCESS, since_success, timestamp, entry=entry)
            )
        data.append(
            datum(schema.PERIODIC_TASK_SKIPPED_RUNS, record.skipped_unpublished, timestamp, entry=entry)
        )
        data.append(
            datum(schema.PERIODIC_TASK_OVERLAPPED_RUNS, record.overlapped_unpublished, timestamp, entry=entry)
        )
    return data


def statistic_datum(
    metric: schema.MetricDefinition, summary: schema.Summary, timestamp: datetime, pool: str
) -> dict[str, Any]:
    """One PutMetricData statistic set: CloudWatch averages it correctly over any period."""
    single = datum(metric, 0.0, timestamp, pool)
    del single["Value"]
    return {**single, "StatisticValues": summary.statistic_values()}


def datum(
    metric: schema.MetricDefinition,
    value: float,
    timestamp: datetime,
    pool: str | None = None,
    queue: str | None = None,
    entry: str | None = None,
) -> dict[str, Any]:
    """One PutMetricData datapoint."""
    return {
        "MetricName": metric.name,
        "Dimensions": [
            {"Name": name, "Value": dimension_value}
            for name, dimension_value in schema.dimensions(metric, pool, queue, entry).items()
        ],
        "Timestamp": timestamp,
        "Value": value,
        "Unit": metric.unit,
        # High resolution, so the wake-up alarm can use a sub-minute period.
        "StorageResolution": 1,
    }


# Reads application gauges, e.g. from the database: metric -> value.
GaugeReader = Callable[[], Mapping[schema.MetricDefinition, float]]


@dataclass(frozen=True)
class PublishTarget:
    """What is measured (the pools and their ECS services, the Beat schedule's entries) and where
    the metrics go."""

    namespace: str
    cluster: str
    pools: tuple[schema.PoolSpec, ...]
    entries: tuple[str, ...] = ()


class QueueMetricsPublisher:
    """One measurement-and-publish step; `run` repeats it."""

    def __init__(
        self,
        *,
        redis_client: redis.Redis,
        layout: BrokerLayout,
        cloudwatch: Any,
        ecs: Any,
        target: PublishTarget,
        gauge_readers: Sequence[GaugeReader] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        schema.validate_namespace(target.namespace)
        self.redis = redis_client
        self.cloudwatch = cloudwatch
        self.ecs = ecs
        self.namespace = target.namespace
        self.cluster = target.cluster
        self.pools = tuple(target.pools)
        self.entries = tuple(target.entries)
        self.layout = layout
        self.gauge_readers = tuple(gauge_readers)
        self.clock = clock

    def publish_once(self) -> TickOutcome:
        all_queues = [queue for spec in self.pools for queue in spec.queues]
        try:
            queues = read_queues(self.redis, self.layout, all_queues)
            in_flight = read_in_flight(self.redis, self.layout)
            measured = drain_task_stats(self.redis, self.layout, [spec.pool for spec in self.pools])
            entries = schedule_state.drain_records(self.redis, self.entries)
            waiting_dead_letters = dead_letters.depth(self.redis)
        except redis.RedisError as error:
            logger.error("broker unreachable, publishing nothing this interval: %s", error)
            return TickOutcome.BROKER_UNREACHABLE
        now = self.clock()
        data = metric_data(self.pools, queues, in_flight, self._worker_counts(), now)
        data += task_stats_data(measured, now)
        data += schedule_data(entries, now)
        data.append(datum(schema.DEAD_LETTERS, waiting_dead_letters, datetime.fromtimestamp(now, UTC)))
        data += self._gauges(datetime.fromtimestamp(now, UTC))
        try:
            for start in range(0, len(data), MAX_DATUMS_PER_REQUEST):
                self.cloudwatch.put_metric_data(
                    Namespace=self.namespace, MetricData=data[start : start + MAX_DATUMS_PER_REQUEST]
                )
        except (BotoCoreError, ClientError) as error:
            logger.error("CloudWatch refused the queue metrics: %s", error)
            return TickOutcome.CLOUDWATCH_FAILED
        logger.debug("published %d queue metrics", len(data))
        return TickOutcome.PUBLISHED

    def _gauges(self, timestamp: datetime) -> list[dict[str, Any]]:
        data = []
        for read in self.gauge_readers:
            try:
                values = read()
            except Exception as error:  # the queue metrics go out regardless
                logger.error("cannot read gauges from %s: %s", getattr(read, "__name__", read), error)
                continue
            data += [datum(metric, value, timestamp) for metric, value in values.items()]
        return data

    def _worker_counts(self) -> dict[str, WorkerCount] | None:
        services = [spec.service for spec in self.pools]
        try:
            return read_worker_counts(self.ecs, self.cluster, services)
        except (BotoCoreError, ClientError) as error:
            # Queue metrics still go out; only the per-worker ones wait for the next interval.
            logger.error("cannot read worker counts from ECS: %s", error)
            return None


def next_delay(interval: float, consecutive_cloudwatch_failures: int) -> float:
    """Seconds until the next tick: the interval, doubled per CloudWatch failure, bounded."""
    return min(interval * 2**consecutive_cloudwatch_failures, max(interval, MAX_BACKOFF_SECONDS))


def run(publisher: QueueMetricsPublisher, interval: float, stop: threading.Event) -> None:
    """Publish every `interval` seconds until `stop` is set. Never raises on broker or AWS faults."""
    failures = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            backs_off = publisher.publish_once() is TickOutcome.CLOUDWATCH_FAILED
        except Exception:
            # An unexpected error in one tick must not end the sidecar; back off and try again.
            logger.exception("queue metrics tick failed")
            backs_off = True
        failures = failures + 1 if backs_off else 0
        stop.wait(max(0.0, next_delay(interval, failures) - (time.monotonic() - started)))


def _binding_table(client: redis.Redis, layout: BrokerLayout, exchange: str) -> list[tuple[str, str]]:
    # Members are "routing_key<sep>pattern<sep>queue" (kombu Channel._queue_bind).
    rows = []
    for member in client.smembers(layout.binding_key(exchange)):
        parts = _text(member).split(layout.separator)
        if len(parts) == 3:
            routing_key, _pattern, queue = parts
            rows.append((routing_key, queue))
    return rows


def _sent_at(raw_message: bytes | str) -> float | None:
    try:
        value = json.loads(raw_message)["headers"][schema.SENT_AT_HEADER]
        return float(value)
    except (ValueError, TypeError, KeyError):
        return None


def _oldest_age(reading: QueueReading, now: float) -> float | None:
    if reading.waiting == 0:
        return 0.0
    if reading.oldest_sent_at is None:
        return None
    # Clocks of the producer and this container differ slightly; an age is never negative.
    return max(0.0, now - reading.oldest_sent_at)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
