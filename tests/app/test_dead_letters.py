"""The dead-letter list: what people do with it (`manage.py dead_letters`) and what the publisher
reports of it, against the real Redis. How messages get there is tests/e2e/test_poison_messages.py."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from io import StringIO
from typing import Any

import boto3
import pytest
import redis
from django.core.management import CommandError, call_command
from moto import mock_aws

from core import dead_letters
from core.app_redis import redis_client
from core.dead_letters import DeadLetter
from infra import app_contract
from queuemetrics import schema
from queuemetrics.publisher import BrokerLayout, PublishTarget, QueueMetricsPublisher

REGION = "eu-west-1"


@pytest.fixture
def client(broker: redis.Redis) -> Iterator[redis.Redis]:
    """The app's client, with no dead letters before and after the test."""
    app_client = redis_client()
    app_client.delete(dead_letters.dead_letters_key())
    yield app_client
    app_client.delete(dead_letters.dead_letters_key())


def task_letter(task_id: str, **fields: Any) -> DeadLetter:
    return DeadLetter(
        id=task_id, queue=app_contract.EMAIL_QUEUE, reason="delivered 3 times: MemoryError", at=time.time(),
        deliveries=3, task="signups.tasks.send_welcome_email", args=["secret@example.com"], **fields,
    )  # fmt: skip


def run(*arguments: str) -> str:
    out = StringIO()
    call_command("dead_letters", *arguments, stdout=out)
    return out.getvalue()


def test_list_shows_each_dead_letter_without_its_arguments(client) -> None:
    dead_letters.add(client, task_letter("task-1"))
    dead_letters.add(client, dead_letters.raw_entry("email", "garbage", "not a message"))

    [first, second] = json.loads(run("list", "--json"))

    assert (first["id"], first["task"], first["deliveries"], first["replayable"]) == (
        "task-1", "signups.tasks.send_welcome_email", 3, True,
    )  # fmt: skip
    assert (second["replayable"], second["reason"]) == (False, "not a message")
    table = run("list")
    assert "2 dead letter(s)" in table and "secret@example.com" not in table


def test_replay_publishes_the_task_again_with_its_id_and_a_fresh_delivery_count(client, broker) -> None:
    dead_letters.add(client, task_letter("task-1"))
    dead_letters.add(client, task_letter("task-2"))
    client.hset(dead_letters.delivery_key("task-1", 0), "deliveries", 4)

    assert run("replay", "task-1") == "replayed task-1\n"

    [message] = [json.loads(raw) for raw in broker.lrange(app_contract.EMAIL_QUEUE, 0, -1)]
    assert message["headers"]["id"] == "task-1"
    assert message["headers"]["task"] == "signups.tasks.send_welcome_email"
    assert not client.exists(dead_letters.delivery_key("task-1", 0)), "counted afresh"
    assert [letter.id for _, letter in dead_letters.read_all(client)] == ["task-2"]


def test_an_entry_that_is_not_a_message_can_be_dropped_not_replayed(client, broker) -> None:
    raw = dead_letters.raw_entry("email", "garbage", "not a message")
    dead_letters.add(client, raw)
    dead_letters.add(client, task_letter("task-1"))

    with pytest.raises(CommandError, match=f"no dead letter unknown; {raw.id} is not a task message"):
        run("replay", raw.id, "unknown")
    assert broker.llen(app_contract.EMAIL_QUEUE) == 0

    assert run("drop", "--all") == f"dropped {raw.id}\ndropped task-1\n"
    assert dead_letters.depth(client) == 0


@pytest.mark.parametrize("arguments", [("replay",), ("drop", "task-1", "--all"), ("list", "--all")])
def test_ids_or_all_but_not_both(client, arguments) -> None:
    with pytest.raises(CommandError):
        run(*arguments)


def test_the_publisher_sends_the_lists_length_with_the_queues(client, broker) -> None:
    """A stack-wide value (no dimension), read from the broker's Redis every tick."""
    sent: list[dict[str, Any]] = []
    with mock_aws():
        cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        cloudwatch.meta.events.register(
            "provide-client-params.cloudwatch.PutMetricData", lambda params, **_: sent.append(params)
        )
        ecs = boto3.client("ecs", region_name=REGION)
        ecs.create_cluster(clusterName="cluster")
        target = PublishTarget(
            namespace="djcelery/test/CeleryQueues", cluster="cluster",
            pools=(schema.PoolSpec(pool="email", queues=("email",), service="worker-email"),),
        )  # fmt: skip
        publisher = QueueMetricsPublisher(
            redis_client=client, layout=BrokerLayout(), cloudwatch=cloudwatch, ecs=ecs, target=target
        )
        publisher.publish_once()
        for _ in range(2):
            dead_letters.add(client, dead_letters.raw_entry("email", "not a message", "test"))
        publisher.publish_once()

    published = [
        (datum["Value"], datum["Dimensions"], datum["Unit"])
        for call in sent
        for datum in call["MetricData"]
        if datum["MetricName"] == schema.DEAD_LETTERS.name
    ]
    assert published == [(0, [], "Count"), (2, [], "Count")]
