"""The queue-metrics publisher against real Redis (real Celery messages) and moto's CloudWatch/ECS."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
import redis
from botocore.config import Config
from celery import Celery
from moto import mock_aws

from core import schedule_state
from queuemetrics import schema
from queuemetrics.publisher import (
    MAX_BACKOFF_SECONDS,
    BrokerLayout,
    PublishTarget,
    QueueMetricsPublisher,
    TickOutcome,
    next_delay,
    run,
)
from queuemetrics.signals import connect_signals

REGION = "eu-west-1"
CLUSTER = "queue-metrics-test"
NAMESPACE = "djcelery/test/CeleryQueues"
DEADLINE_SECONDS = 15


@dataclass
class PutRecorder:
    """Every PutMetricData request the CloudWatch client sends, as sent."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, params: dict[str, Any], **_: Any) -> None:
        self.calls.append(params)

    def values(self, metric: schema.MetricDefinition, pool: str, queue: str | None = None) -> list[float]:
        wanted = [{"Name": k, "Value": v} for k, v in schema.dimensions(metric, pool, queue).items()]
        return [
            datum["Value"]
            for call in self.calls
            for datum in call["MetricData"]
            if datum["MetricName"] == metric.name and datum["Dimensions"] == wanted
        ]

    def last(self, metric: schema.MetricDefinition, pool: str, queue: str | None = None) -> float:
        values = self.values(metric, pool, queue)
        assert values, f"no {metric.name} datapoint for pool={pool} queue={queue} was published"
        return values[-1]


@dataclass
class Broker:
    """A Celery app and a Redis view isolated under their own kombu key prefix."""

    url: str
    prefix: str
    celery: Celery
    client: redis.Redis

    @property
    def layout(self) -> BrokerLayout:
        return BrokerLayout.from_transport_options(self.celery.conf.broker_transport_options)

    def send(self, queue: str, count: int = 1, priority: int | None = None) -> None:
        for _ in range(count):
            self.celery.send_task("queuemetrics.tests.noop", queue=queue, priority=priority)


def make_broker(url: str) -> Broker:
    prefix = f"qmtest-{uuid.uuid4().hex[:8]}:"
    app = Celery("queue-metrics-test", broker=url, set_as_current=False)
    app.conf.broker_transport_options = {"global_keyprefix": prefix}
    app.conf.broker_connection_retry_on_startup = True
    connect_signals()
    return Broker(url=url, prefix=prefix, celery=app, client=redis.Redis.from_url(url))


@pytest.fixture
def broker(redis_url: str) -> Iterator[Broker]:
    made = make_broker(redis_url)
    yield made
    made.celery.close()
    for key in made.client.scan_iter(match=f"{made.prefix}*"):
        made.client.delete(key)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


@pytest.fixture
def ecs(aws: None) -> Any:
    client = boto3.client("ecs", region_name=REGION)
    client.create_cluster(clusterName=CLUSTER)
    client.register_task_definition(
        family="worker", containerDefinitions=[{"name": "worker", "image": "app", "memory": 512}]
    )
    return client


@pytest.fixture
def recorder(aws: None) -> PutRecorder:
    return PutRecorder()


def cloudwatch_client(recorder: PutRecorder, **kwargs: Any) -> Any:
    client = boto3.client("cloudwatch", region_name=REGION, **kwargs)
    client.meta.events.register("provide-client-params.cloudwatch.PutMetricData", recorder)
    return client


def create_service(ecs: Any, name: str, desired: int) -> None:
    ecs.create_service(cluster=CLUSTER, serviceName=name, taskDefinition="worker", desiredCount=desired)


def make_publisher(
    broker: Broker, ecs: Any, cloudwatch: Any, pools: tuple[schema.PoolSpec, ...], **kwargs: Any
) -> QueueMetricsPublisher:
    return QueueMetricsPublisher(
        redis_client=broker.client,
        cloudwatch=cloudwatch,
        ecs=ecs,
        target=PublishTarget(NAMESPACE, CLUSTER, pools),
        layout=broker.layout,
        **kwargs,
    )


def wait_until(condition: Callable[[], bool], what: str, deadline: float = DEADLINE_SECONDS) -> None:
    give_up = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > give_up:
            raise AssertionError(f"timed out after {deadline} s waiting for {what}")
        time.sleep(0.05)


DEFAULT_POOL = schema.PoolSpec(pool="default", queues=("default", "reports"), service="worker-default")
EMAIL_POOL = schema.PoolSpec(pool="email", queues=("email",), service="worker-email")


def test_waiting_counts_every_priority_list_of_every_queue(broker, ecs, recorder):
    create_service(ecs, "worker-default", desired=2)
    for priority in (None, 0, 1, 3, 5, 6, 9):
        broker.send("default", priority=priority)
    broker.send("reports", count=2, priority=9)
    publisher = make_publisher(broker, ecs, cloudwatch_client(recorder), (DEFAULT_POOL,))

    assert publisher.publish_once() is TickOutcome.PUBLISHED

    assert recorder.last(schema.QUEUE_WAITING, "default", "default") == 7, (
        "messages in the priority sub-lists (queue\\x06\\x16<n>) must be counted"
    )
    assert recorder.last(schema.QUEUE_WAITING, "default", "reports") == 2
    assert recorder.last(schema.POOL_BACKLOG, "default") == 9
    assert recorder.last(schema.BACKLOG_PER_WORKER, "default") == 4.5
    assert recorder.last(schema.WAKE_UP_BACKLOG, "default") == 0, "the pool has workers: no wake-up"


def test_one_batched_high_resolution_call_per_tick_that_cloudwatch_stores(broker, ecs, recorder):
    create_service(ecs, "worker-default", desired=1)
    create_service(ecs, "worker-email", desired=1)
    broker.send("email", count=3)
    cloudwatch = cloudwatch_client(recorder)
    publisher = make_publisher(broker, ecs, cloudwatch, (DEFAULT_POOL, EMAIL_POOL))

    publisher.publish_once()

    assert len(recorder.calls) == 1, "all metrics of a tick go out in one PutMetricData call"
    [call] = recorder.calls
    assert call["Namespace"] == NAMESPACE
    assert {datum["StorageResolution"] for datum in call["MetricData"]} == {1}
    published = {datum["MetricName"] for datum in call["MetricData"]}
    expected = {metric.name for metric in (*schema.QUEUE_METRICS, *schema.POOL_METRICS, schema.DEAD_LETTERS)}
    assert published == expected, f"missing {expected - published}, unexpected {published - expected}"
    stored = cloudwatch.get_metric_statistics(
        Namespace=NAMESPACE,
        MetricName=schema.QUEUE_WAITING.name,
        Dimensions=[{"Name": "Pool", "Value": "email"}, {"Name": "Queue", "Value": "email"}],
        StartTime=call["MetricData"][0]["Timestamp"].timestamp() - 60,
        EndTime=call["MetricData"][0]["Timestamp"].timestamp() + 60,
        Period=60,
        Statistics=["Maximum"],
    )
    assert [point["Maximum"] for point in stored["Datapoints"]] == [3.0]


def test_empty_queues_publish_zero_length_and_zero_age(broker, ecs, recorder):
    create_service(ecs, "worker-email", desired=0)
    publisher = make_publisher(broker, ecs, cloudwatch_client(recorder), (EMAIL_POOL,))

    publisher.publish_once()

    assert recorder.last(schema.QUEUE_WAITING, "email", "email") == 0
    assert recorder.last(schema.QUEUE_OLDEST_AGE, "email", "email") == 0
    assert recorder.last(schema.POOL_BACKLOG, "email") == 0
    assert recorder.last(schema.WAKE_UP_BACKLOG, "email") == 0


def test_oldest_age_is_the_real_age_of_the_oldest_message_in_any_priority_list(broker, ecs, recorder):
    create_service(ecs, "worker-email", desired=1)
    broker.send("email", priority=9)  # the oldest, in a priority sub-list
    oldest_sent = time.time()
    # The age under test is real elapsed time, so let some pass before the newer messages.
    time.sleep(1.5)
    broker.send("email", count=3, priority=0)
    publisher = make_publisher(broker, ecs, cloudwatch_client(recorder), (EMAIL_POOL,))

    publisher.publish_once()
    real_age = time.time() - oldest_sent

    age = recorder.last(schema.QUEUE_OLDEST_AGE, "email", "email")
    assert abs(age - real_age) < 0.5, f"published age {age:.2f} s; the oldest message is {real_age:.2f} s old"
    assert recorder.last(schema.POOL_OLDEST_AGE, "email") == age


def test_in_flight_messages_count_for_the_pool_of_their_queue(broker, ecs, recorder):
    create_service(ecs, "worker-default", desired=1)
    create_service(ecs, "worker-email", desired=1)
    broker.send("email", count=2)
    broker.send("default", count=1)
    publisher = make_publisher(broker, ecs, cloudwatch_client(recorder), (DEFAULT_POOL, EMAIL_POOL))

    with broker.celery.connection_for_read() as connection:
        # A delivered, unacknowledged message: kombu moves it to the global `unacked` hash.
        delivered = connection.default_channel.basic_get(queue="email", no_ack=False)
        assert delivered is not None
        publisher.publish_once()

    assert recorder.last(schema.QUEUE_WAITING, "email", "email") == 1
    assert recorder.last(schema.POOL_IN_FLIGHT, "email") == 1
    assert recorder.last(schema.POOL_BACKLOG, "email") == 2, "in-flight work keeps its workers"
    assert recorder.last(schema.POOL_IN_FLIGHT, "default") == 0, "another pool's unacked message"


def test_a_pool_without_workers_asks_for_a_wake_up(broker, ecs, recorder):
    create_service(ecs, "worker-email", desired=0)
    broker.send("email", count=5)
    publisher = make_publisher(broker, ecs, cloudwatch_client(recorder), (EMAIL_POOL,))

    publisher.publish_once()
    assert recorder.last(schema.WAKE_UP_BACKLOG, "email") == 5
    assert recorder.last(schema.POOL_DESIRED_WORKERS, "email") == 0

    ecs.update_service(cluster=CLUSTER, service="worker-email", desiredCount=2)
    publisher.publish_once()
    assert recorder.last(schema.WAKE_UP_BACKLOG, "email") == 0, "workers are on their way"
    assert recorder.last(schema.BACKLOG_PER_WORKER, "email") == 2.5


def statistic_sets(recorder: PutRecorder, metric: schema.MetricDefinition, pool: str) -> list[dict]:
    wanted = [{"Name": k, "Value": v} for k, v in schema.dimensions(metric, pool).items()]
    return [
        datum["StatisticValues"]
        for call in recorder.calls
        for datum in call["MetricData"]
        if datum["MetricName"] == metric.name and datum["Dimensions"] == wanted
    ]


def leave_task_stats(broker: Broker, pool: str, runs: list[float], waits: list[float]) -> None:
    """What a pool process leaves after some tasks (queuemetrics.task_stats), in two records."""
    for half in (slice(0, len(runs) // 2), slice(len(runs) // 2, None)):
        stats = schema.TaskStats()
        for value in runs[half]:
            stats.run.add(value)
        for value in waits[half]:
            stats.wait.add(value)
        broker.client.rpush(broker.layout.task_stats_key(pool), stats.encode())


def test_measured_run_time_and_queue_wait_go_out_as_statistic_sets_once(broker, ecs, recorder):
    create_service(ecs, "worker-email", desired=1)
    create_service(ecs, "worker-default", desired=1)
    leave_task_stats(broker, "email", runs=[0.5, 1.5, 2.0, 4.0], waits=[0.1, 0.3, 3.0, 0.6])
    broker.client.rpush(broker.layout.task_stats_key("email"), "not a record")
    cloudwatch = cloudwatch_client(recorder)
    publisher = make_publisher(broker, ecs, cloudwatch, (DEFAULT_POOL, EMAIL_POOL))

    publisher.publish_once()

    [run] = statistic_sets(recorder, schema.POOL_TASK_RUN_SECONDS, "email")
    assert run == {"SampleCount": 4, "Sum": 8.0, "Minimum": 0.5, "Maximum": 4.0}
    [wait] = statistic_sets(recorder, schema.POOL_QUEUE_WAIT_SECONDS, "email")
    assert wait == {"SampleCount": 4, "Sum": pytest.approx(4.0), "Minimum": 0.1, "Maximum": 3.0}
    assert statistic_sets(recorder, schema.POOL_TASK_RUN_SECONDS, "default") == [], "an idle pool: nothing"
    assert broker.client.llen(broker.layout.task_stats_key("email")) == 0, "drained"
    stored = cloudwatch.get_metric_statistics(
        Namespace=NAMESPACE,
        MetricName=schema.POOL_TASK_RUN_SECONDS.name,
        Dimensions=[{"Name": "Pool", "Value": "email"}],
        StartTime=time.time() - 120,
        EndTime=time.time() + 60,
        Period=60,
        Statistics=["Average", "SampleCount"],
    )["Datapoints"]
    assert [(point["Average"], point["SampleCount"]) for point in stored] == [(2.0, 4.0)]

    publisher.publish_once()
    assert len(statistic_sets(recorder, schema.POOL_TASK_RUN_SECONDS, "email")) == 1, "each sample once"


def test_queue_metrics_still_go_out_when_ecs_cannot_be_read(broker, aws, recorder):
    broker.send("email", count=2)
    ecs_without_cluster = boto3.client("ecs", region_name=REGION)
    publisher = make_publisher(broker, ecs_without_cluster, cloudwatch_client(recorder), (EMAIL_POOL,))

    assert publisher.publish_once() is TickOutcome.PUBLISHED

    assert recorder.last(schema.QUEUE_WAITING, "email", "email") == 2
    assert recorder.values(schema.BACKLOG_PER_WORKER, "email") == [], "no worker count, no per-worker metric"
    assert recorder.values(schema.WAKE_UP_BACKLOG, "email") == []


def test_cloudwatch_failure_is_reported_and_backs_off_within_a_bound(broker, ecs, recorder):
    unreachable = cloudwatch_client(
        recorder,
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    publisher = make_publisher(broker, ecs, unreachable, (EMAIL_POOL,))

    assert publisher.publish_once() is TickOutcome.CLOUDWATCH_FAILED
    assert [next_delay(15, failures) for failures in range(5)] == [15, 30, 60, 120, 120]
    assert next_delay(15, 50) == MAX_BACKOFF_SECONDS


# --- Broker outage: a throwaway redis-server, never the shared one -----------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ThrowawayRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        wait_until(lambda: _answers_ping(client), f"redis-server on port {self.port}")

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=DEADLINE_SECONDS)


def _answers_ping(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture
def throwaway_redis() -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis()
    server.start()
    yield server
    if server.process and server.process.poll() is None:
        server.stop()


def test_broker_outage_publishes_nothing_and_publishing_resumes(throwaway_redis, ecs, recorder, caplog):
    create_service(ecs, "worker-email", desired=0)
    broker = make_broker(throwaway_redis.url)
    broker.client = redis.Redis.from_url(throwaway_redis.url, socket_connect_timeout=1, socket_timeout=1)
    broker.send("email", count=4)
    publisher = make_publisher(broker, ecs, cloudwatch_client(recorder), (EMAIL_POOL,))
    stop = threading.Event()
    loop = threading.Thread(target=run, args=(publisher, 0.2, stop), daemon=True)
    caplog.set_level(logging.ERROR, logger="queuemetrics.publisher")
    loop.start()
    try:
        wait_until(lambda: recorder.values(schema.WAKE_UP_BACKLOG, "email"), "the first tick")
        assert recorder.last(schema.WAKE_UP_BACKLOG, "email") == 4

        throwaway_redis.stop()
        calls_before_outage = len(recorder.calls)
        wait_until(
            lambda: sum("broker unreachable" in r.message for r in caplog.records) >= 3,
            "three ticks that find the broker unreachable",
        )
        assert loop.is_alive(), "the publisher must survive a broker outage"
        during_outage = recorder.calls[calls_before_outage:]
        # At most the one tick that was already in flight when the broker stopped.
        assert len(during_outage) <= 1, f"published {len(during_outage)} times without a broker"

        throwaway_redis.start()  # empty: nothing was persisted
        broker.send("email", count=2)
        wait_until(
            lambda: recorder.values(schema.WAKE_UP_BACKLOG, "email")[-1:] == [2],
            "publishing to resume with the new backlog",
        )
    finally:
        stop.set()
        loop.join(timeout=DEADLINE_SECONDS)
        broker.celery.close()
    assert not loop.is_alive(), "the loop must end promptly when asked to stop"


def entry_values(recorder: PutRecorder, metric: schema.MetricDefinition, entry: str) -> list[float]:
    wanted = [{"Name": schema.ENTRY_DIMENSION, "Value": entry}]
    return [
        datum["Value"]
        for call in recorder.calls
        for datum in call["MetricData"]
        if datum["MetricName"] == metric.name and datum["Dimensions"] == wanted
    ]


def test_each_schedule_entry_reports_its_staleness_and_its_skipped_runs_once(broker, ecs, recorder):
    create_service(ecs, "worker-email", desired=1)
    fresh, failing, unscheduled = (f"{name}-{uuid.uuid4().hex[:8]}" for name in ("fresh", "failing", "never"))
    now = time.time()
    schedule_state.mark_scheduled(broker.client, [fresh, failing], [], now - 50)
    schedule_state.record_outcome(broker.client, fresh, now - 5, None)
    schedule_state.record_outcome(broker.client, failing, now - 2, RuntimeError("refused"))
    schedule_state.add_skipped(broker.client, fresh, 3, now)
    schedule_state.add_overlapped(broker.client, failing, now)
    cloudwatch = cloudwatch_client(recorder)
    publisher = QueueMetricsPublisher(
        redis_client=broker.client,
        cloudwatch=cloudwatch,
        ecs=ecs,
        target=PublishTarget(NAMESPACE, CLUSTER, (EMAIL_POOL,), entries=(fresh, failing, unscheduled)),
        layout=broker.layout,
    )
    try:
        publisher.publish_once()
        publisher.publish_once()
        since = {
            entry: entry_values(recorder, schema.PERIODIC_TASK_SECONDS_SINCE_SUCCESS, entry)
            for entry in (fresh, failing, unscheduled)
        }
        skipped = entry_values(recorder, schema.PERIODIC_TASK_SKIPPED_RUNS, fresh)
        overlapped = entry_values(recorder, schema.PERIODIC_TASK_OVERLAPPED_RUNS, failing)
        stored = cloudwatch.get_metric_statistics(
            Namespace=NAMESPACE,
            MetricName=schema.PERIODIC_TASK_SECONDS_SINCE_SUCCESS.name,
            Dimensions=[{"Name": schema.ENTRY_DIMENSION, "Value": failing}],
            StartTime=now - 60,
            EndTime=now + 60,
            Period=60,
            Statistics=["Minimum"],
        )["Datapoints"]
    finally:
        for entry in (fresh, failing, unscheduled):
            broker.client.delete(schedule_state.redis_key("record", entry))

    assert all(4.5 <= value <= 6 for value in since[fresh]), f"5 s since its success: {since[fresh]}"
    assert all(49.5 <= value <= 51 for value in since[failing]), (
        f"never succeeded: counted from when Beat scheduled it, 50 s ago: {since[failing]}"
    )
    assert since[unscheduled] == [], "an entry Beat never scheduled has no datapoint: its alarm sees none"
    assert skipped == [3, 0], "skipped runs are published once, then 0"
    assert overlapped == [1, 0]
    assert len(stored) == 1 and 49.5 <= stored[0]["Minimum"] <= 51, "CloudWatch stores the entry's metric"
