"""`manage.py publish_queue_metrics` in the Django project: the project's Celery app stamps messages,
the command publishes them, and SIGTERM stops it cleanly."""

from __future__ import annotations

import io
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import redis
from django.core.management import call_command
from django.core.management.base import CommandError
from moto import mock_aws

from config.celery import app as project_celery_app
from infra import app_contract
from queuemetrics import schema
from signups.models import Signup

# The publisher also reads the application's gauges from PostgreSQL.
pytestmark = pytest.mark.django_db

REGION = "eu-west-1"
CLUSTER = "djcelery-test"
NAMESPACE = "djcelery/test/CeleryQueues"
DEADLINE_SECONDS = 15


@pytest.fixture
def queue(redis_url: str) -> Iterator[str]:
    """A queue of its own on the project's broker, emptied afterwards."""
    name = f"metrics-{uuid.uuid4().hex[:8]}"
    yield name
    with project_celery_app.connection_for_write() as connection:
        connection.default_channel.queue_purge(name)
    client = redis.Redis.from_url(project_celery_app.conf.broker_url)
    client.delete(f"_kombu.binding.{name}", f"_kombu.binding_permanent.{name}")


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, redis_url: str, queue: str) -> Iterator[Any]:
    pools = [schema.PoolSpec(pool="default", queues=(queue,), service="worker-default")]
    for name, value in {
        app_contract.QUEUE_METRICS_NAMESPACE: NAMESPACE,
        app_contract.QUEUE_METRICS_INTERVAL_SECONDS: "1",
        app_contract.QUEUE_METRICS_POOLS: schema.encode_pools(pools),
        app_contract.ECS_CLUSTER: CLUSTER,
        app_contract.AWS_REGION: REGION,
        # The broker the project's Celery app uses (settings read REDIS_URL the same way).
        app_contract.REDIS_URL: project_celery_app.conf.broker_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        ecs = boto3.client("ecs", region_name=REGION)
        ecs.create_cluster(clusterName=CLUSTER)
        ecs.register_task_definition(
            family="worker", containerDefinitions=[{"name": "worker", "image": "app", "memory": 512}]
        )
        ecs.create_service(
            cluster=CLUSTER, serviceName="worker-default", taskDefinition="worker", desiredCount=0
        )
        yield boto3.client("cloudwatch", region_name=REGION)


def latest(cloudwatch: Any, metric: schema.MetricDefinition, **dimensions: str) -> float | None:
    now = time.time()
    points = cloudwatch.get_metric_statistics(
        Namespace=NAMESPACE,
        MetricName=metric.name,
        Dimensions=[{"Name": name, "Value": value} for name, value in dimensions.items()],
        StartTime=now - 300,
        EndTime=now + 60,
        Period=60,
        Statistics=["Maximum"],
    )["Datapoints"]
    return max((point["Maximum"] for point in points), default=None)


def test_once_publishes_what_the_project_app_enqueued_and_how_old_it_is(environment, queue):
    before = time.time()
    for _ in range(3):
        project_celery_app.send_task("signups.tasks.example", queue=queue)
    out = io.StringIO()

    call_command("publish_queue_metrics", "--once", stdout=out)

    assert out.getvalue().strip() == "published"
    assert latest(environment, schema.QUEUE_WAITING, Pool="default", Queue=queue) == 3
    assert latest(environment, schema.WAKE_UP_BACKLOG, Pool="default") == 3, "the pool has no workers"
    age = latest(environment, schema.QUEUE_OLDEST_AGE, Pool="default", Queue=queue)
    assert age is not None, "the project's messages must carry the sent-at header (app not installed?)"
    assert 0 <= age <= time.time() - before + 0.5


# Transactional: the gauge reader closes a connection left in a transaction, as between requests.
@pytest.mark.django_db(transaction=True)
def test_once_publishes_the_failed_and_retrying_welcome_emails(environment, queue):
    Signup.objects.create(email="failed@example.com", email_canonical="failed@example.com", status="failed")
    Signup.objects.create(email="retry@example.com", email_canonical="retry@example.com", attempts=2)
    Signup.objects.create(email="new@example.com", email_canonical="new@example.com")

    call_command("publish_queue_metrics", "--once", stdout=io.StringIO())

    assert latest(environment, schema.WELCOME_EMAILS_FAILED) == 1
    assert latest(environment, schema.WELCOME_EMAILS_RETRYING) == 1


def test_the_loop_publishes_until_sigterm_then_exits_cleanly(environment, queue, caplog):
    project_celery_app.send_task("signups.tasks.example", queue=queue)
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}

    def stop_after_first_publish() -> None:
        give_up = time.monotonic() + DEADLINE_SECONDS
        while latest(environment, schema.QUEUE_WAITING, Pool="default", Queue=queue) != 1:
            if time.monotonic() > give_up:
                break  # SIGTERM anyway, so the command returns and the assertion below explains
            time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGTERM)

    stopper = threading.Thread(target=stop_after_first_publish, daemon=True)
    out = io.StringIO()
    stopper.start()
    started = time.monotonic()
    try:
        call_command("publish_queue_metrics", stdout=out)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    stopper.join(timeout=DEADLINE_SECONDS)

    assert latest(environment, schema.QUEUE_WAITING, Pool="default", Queue=queue) == 1
    assert "queue metrics publisher stopped" in caplog.text
    assert time.monotonic() - started < DEADLINE_SECONDS, "SIGTERM must end the loop promptly"


def test_bad_configuration_stops_the_command_with_every_problem(monkeypatch):
    monkeypatch.delenv(app_contract.ECS_CLUSTER, raising=False)
    monkeypatch.setenv(app_contract.QUEUE_METRICS_POOLS, "[]")
    with pytest.raises(CommandError, match="ECS_CLUSTER") as raised:
        call_command("publish_queue_metrics", "--once")
    assert "QUEUE_METRICS_POOLS" in str(raised.value)
