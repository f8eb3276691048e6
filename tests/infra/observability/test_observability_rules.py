"""The pure parts of observability: the deployment-event pattern against ECS's own events (matched
by moto's EventBridge), the Beat count's arithmetic, and the dashboard for a broker with replicas."""

from __future__ import annotations

import json
from dataclasses import replace

import boto3
import pytest
from moto import mock_aws

from infra.observability.alarms import alarm_rules
from infra.observability.config import AlarmsConfig
from infra.observability.dashboard import dashboard_body
from infra.observability.events import (
    DEPLOYMENT_MESSAGE_PATHS,
    DEPLOYMENT_MESSAGE_TEMPLATE,
    ROLLBACK_REASON_PREFIX,
    alarm_topic_policy,
    deployment_events_pattern,
    service_arn,
)
from infra.observability.metrics import MonitoredStack, beat_period_seconds, beat_tasks

ACCOUNT, REGION = "123456789012", "us-east-1"
CLUSTER_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/djcelery-dev"
WEB, BEAT = "djcelery-dev-web", "djcelery-dev-beat"
THRESHOLDS = AlarmsConfig(
    email="",
    web_5xx_percent=5,
    db_free_storage_percent=10,
    redis_memory_percent=80,
    beat_minutes=5,
)
QUEUE_AGE_ALARM_SECONDS = 600
STACK = MonitoredStack(
    region=REGION,
    load_balancer="app/web-lb/0123456789abcdef",
    target_group="targetgroup/web-targets/0123456789abcdef",
    db_instance="database-postgres-1234",
    db_allocated_storage_gib=50,
    cache_clusters=("broker-redis-001", "broker-redis-002"),
    queue_namespace="djcelery/prod/CeleryQueues",
    pools={"default": ("default",), "email": ("email",)},
    publish_interval_seconds=10,
    beat_pool="default",
)


def deployment_event(service: str, event_name: str, reason: str) -> dict:
    """An ECS Deployment State Change event as ECS sends it (shape from the ECS developer guide)."""
    return {
        "version": "0",
        "id": "ddca6449-b258-46c0-8653-e0e3a6EXAMPLE",
        "detail-type": "ECS Deployment State Change",
        "source": "aws.ecs",
        "account": ACCOUNT,
        "time": "2026-05-23T12:31:14Z",
        "region": REGION,
        "resources": [service],
        "detail": {
            "eventType": "ERROR" if event_name == "SERVICE_DEPLOYMENT_FAILED" else "INFO",
            "eventName": event_name,
            "deploymentId": "ecs-svc/123",
            "updatedAt": "2026-05-23T11:11:11Z",
            "reason": reason,
        },
    }


class DeploymentRule:
    """The stack's deployment-event rule in moto's EventBridge, delivering to a queue that stands in
    for the SNS topic (moto delivers to SQS targets, not SNS ones), with the stack's message."""

    def __init__(self, service_names: list[str]) -> None:
        self.events = boto3.client("events", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        self.sqs = sqs
        self.queue_url = sqs.create_queue(QueueName="alarms")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        pattern = deployment_events_pattern([service_arn(CLUSTER_ARN, name) for name in service_names])
        self.events.put_rule(Name="deployments", EventPattern=pattern)
        self.events.put_targets(
            Rule="deployments",
            Targets=[
                {
                    "Id": "alarms",
                    "Arn": queue_arn,
                    "InputTransformer": {
                        "InputPathsMap": DEPLOYMENT_MESSAGE_PATHS,
                        "InputTemplate": DEPLOYMENT_MESSAGE_TEMPLATE,
                    },
                }
            ],
        )

    def deliver(self, event: dict) -> list[str]:
        """Sends an ECS event to the default bus; returns the messages the rule delivered."""
        self.events.put_events(
            Entries=[
                {
                    "Source": event["source"],
                    "DetailType": event["detail-type"],
                    "Resources": event["resources"],
                    "Detail": json.dumps(event["detail"]),
                }
            ]
        )
        # moto delivers during put_events, so the queue already holds whatever was delivered.
        messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        return [message["Body"] for message in messages]


@pytest.fixture
def deployment_rule():
    with mock_aws():
        yield DeploymentRule([WEB, BEAT])


@pytest.mark.parametrize(
    ("service", "event_name", "reason", "notified"),
    [
        (WEB, "SERVICE_DEPLOYMENT_FAILED", "ECS deployment circuit breaker: task failed to start.", True),
        (
            BEAT,
            "SERVICE_DEPLOYMENT_IN_PROGRESS",
            f"{ROLLBACK_REASON_PREFIX} to deploymentId ecs-svc/42.",
            True,
        ),
        (WEB, "SERVICE_DEPLOYMENT_IN_PROGRESS", "ECS deployment ecs-svc/123 in progress.", False),
        (WEB, "SERVICE_DEPLOYMENT_COMPLETED", "ECS deployment ecs-svc/123 completed.", False),
        (
            "someone-elses-service",
            "SERVICE_DEPLOYMENT_FAILED",
            "ECS deployment circuit breaker: failed.",
            False,
        ),
    ],
)
def test_people_hear_of_failed_deployments_and_rollbacks_of_the_stacks_services_only(
    deployment_rule, service, event_name, reason, notified
):
    delivered = deployment_rule.deliver(
        deployment_event(service_arn(CLUSTER_ARN, service), event_name, reason)
    )
    assert bool(delivered) is notified, f"{event_name} ({reason!r}) of {service}: delivered {delivered}"
    if notified:
        (message,) = delivered
        for part in (service_arn(CLUSTER_ARN, service), event_name, reason):
            assert part in message, f"the message {message!r} does not say {part!r}"


def test_service_arns_use_the_long_format_ecs_events_carry():
    assert service_arn(CLUSTER_ARN, WEB) == f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/djcelery-dev/{WEB}"


def test_beat_count_tells_one_task_from_none_and_two_despite_tick_jitter() -> None:
    """One Beat task's publisher writes n = period / interval datapoints a period, give or take one
    as ticks fall either side of a period boundary. The count must stay nearer 1 than 0 or 2, for
    every interval the stack config allows."""
    for interval in range(10, 301):
        period = beat_period_seconds(interval)
        assert period % 60 == 0, f"interval {interval}: alarms over a minute need whole-minute periods"
        count = beat_tasks(replace(STACK, publish_interval_seconds=interval), "default")
        assert count.text == f"FILL(samples, 0) * {interval} / {period}", interval
        assert count.inputs["samples"].period == period, interval
        per_task = period / interval
        one_task = [(per_task + jitter) / per_task for jitter in (-1, 0, 1)]
        two_tasks = [(2 * per_task + jitter) / per_task for jitter in (-2, 0, 2)]
        assert all(abs(value - 1) < 0.5 for value in one_task), f"interval {interval}: one task is {one_task}"
        assert all(abs(value - 1) >= 0.5 for value in two_tasks), f"interval {interval}: two are {two_tasks}"


def test_broker_alarms_and_graphs_cover_every_node_of_the_replication_group() -> None:
    rules = {
        rule.key: rule
        for rule in alarm_rules(THRESHOLDS, 50, 10, web_serves_traffic=True, beat_pool=STACK.beat_pool)
    }
    for key, function in (("broker-evictions", "SUM"), ("broker-memory", "MAX")):
        queries = rules[key].metric_queries(STACK)
        nodes = [query["metric"]["dimensions"]["CacheClusterId"] for query in queries if "metric" in query]
        assert nodes == list(STACK.cache_clusters), key
        assert queries[-1]["expression"] == f"{function}([node0, node1])"
    widgets = json.loads(dashboard_body(STACK, THRESHOLDS, QUEUE_AGE_ALARM_SECONDS))["widgets"]
    evictions = next(w for w in widgets if w["properties"]["title"].startswith("Broker: evicted"))
    assert [row[3] for row in evictions["properties"]["metrics"]] == list(STACK.cache_clusters)


def test_dashboard_widgets_tile_the_grid_without_overlap() -> None:
    widgets = json.loads(dashboard_body(STACK, THRESHOLDS, QUEUE_AGE_ALARM_SECONDS))["widgets"]
    cells = set()
    for widget in widgets:
        assert widget["x"] + widget["width"] <= 24, widget["properties"]["title"]
        for x in range(widget["x"], widget["x"] + widget["width"]):
            for y in range(widget["y"], widget["y"] + widget["height"]):
                assert (x, y) not in cells, f"{widget['properties']['title']} overlaps another widget"
                cells.add((x, y))


def test_no_healthy_target_alarm_only_where_web_tasks_are_wanted() -> None:
    keys = {rule.key for rule in alarm_rules(THRESHOLDS, 50, 10, web_serves_traffic=False, beat_pool=None)}
    assert "web-no-healthy-targets" not in keys and "beat-count" not in keys
    assert {"web-5xx", "web-unhealthy-targets", "db-free-storage", "broker-evictions"} <= keys


def test_topic_policy_follows_the_partition_of_the_topic() -> None:
    topic = "arn:aws-cn:sns:cn-north-1:123456789012:alarms"
    policy = json.loads(alarm_topic_policy(topic, ACCOUNT, "cn-north-1", "arn:aws-cn:events:rule/x"))
    alarms = next(s for s in policy["Statement"] if s["Principal"]["Service"] == "cloudwatch.amazonaws.com")
    assert (
        alarms["Condition"]["ArnLike"]["aws:SourceArn"]
        == "arn:aws-cn:cloudwatch:cn-north-1:123456789012:alarm:*"
    )
