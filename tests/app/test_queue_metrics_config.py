"""The publisher's configuration: the pools JSON, the namespace, and its environment contract."""

from __future__ import annotations

import json

import pytest
from django.core.management.base import CommandError

from infra import app_contract
from queuemetrics import schema
from queuemetrics.management.commands import publish_queue_metrics as command

POOLS = (
    schema.PoolSpec(pool="default", queues=("default", "reports"), service="app-dev-worker-default"),
    schema.PoolSpec(pool="email", queues=("email",), service="app-dev-worker-email"),
)


def valid_environment() -> dict[str, str]:
    return {
        app_contract.QUEUE_METRICS_NAMESPACE: schema.metric_namespace("djcelery", "dev"),
        app_contract.QUEUE_METRICS_POOLS: schema.encode_pools(POOLS),
        app_contract.ECS_CLUSTER: "app-dev",
        app_contract.AWS_REGION: "eu-west-1",
        app_contract.REDIS_URL: "rediss://:token@broker:6379/0?ssl_cert_reqs=required",
    }


def test_the_command_reads_the_variables_the_contract_names():
    assert (
        command.NAMESPACE_VARIABLE,
        command.INTERVAL_VARIABLE,
        command.POOLS_VARIABLE,
        command.CLUSTER_VARIABLE,
        command.REGION_VARIABLE,
        command.REDIS_URL_VARIABLE,
    ) == (
        app_contract.QUEUE_METRICS_NAMESPACE,
        app_contract.QUEUE_METRICS_INTERVAL_SECONDS,
        app_contract.QUEUE_METRICS_POOLS,
        app_contract.ECS_CLUSTER,
        app_contract.AWS_REGION,
        app_contract.REDIS_URL,
    )


def test_settings_round_trip_what_infra_encodes():
    settings = command.PublisherSettings.from_environment(valid_environment())

    assert settings.pools == POOLS
    assert settings.namespace == "djcelery/dev/CeleryQueues"
    assert settings.interval_seconds == schema.DEFAULT_INTERVAL_SECONDS


def test_every_bad_variable_is_reported_at_once():
    environment = valid_environment()
    del environment[app_contract.ECS_CLUSTER]
    environment[app_contract.QUEUE_METRICS_NAMESPACE] = "AWS/ECS"
    environment[app_contract.QUEUE_METRICS_INTERVAL_SECONDS] = "soon"

    with pytest.raises(CommandError) as raised:
        command.PublisherSettings.from_environment(environment)

    message = str(raised.value)
    for expected in ("ECS_CLUSTER", "QUEUE_METRICS_NAMESPACE", "QUEUE_METRICS_INTERVAL_SECONDS", "'soon'"):
        assert expected in message, f"{expected!r} missing from: {message}"


@pytest.mark.parametrize(
    ("pools_json", "complaint"),
    [
        ("not json", "must be JSON"),
        ("[]", "non-empty JSON list"),
        ('[{"pool": "default", "queues": ["a"]}]', 'exactly the keys "pool", "queues", "service"'),
        ('[{"pool": "Default!", "queues": ["a"], "service": "s"}]', "pools[0].pool 'Default!'"),
        ('[{"pool": "default", "queues": [], "service": "s"}]', "non-empty list of queue names"),
        (
            json.dumps(
                [
                    {"pool": "a", "queues": ["q"], "service": "s"},
                    {"pool": "b", "queues": ["q"], "service": "t"},
                ]
            ),
            "queue 'q' is in pool 'a' and in pools[1]",
        ),
        (
            json.dumps(
                [
                    {"pool": "a", "queues": ["q"], "service": "s"},
                    {"pool": "a", "queues": ["r"], "service": "t"},
                ]
            ),
            "pool 'a' appears twice",
        ),
    ],
)
def test_bad_pools_are_refused_with_the_reason(pools_json, complaint):
    with pytest.raises(ValueError) as raised:
        schema.parse_pools(pools_json)
    assert complaint in str(raised.value)


def test_infra_cannot_encode_pools_the_publisher_would_refuse():
    twice = (POOLS[0], POOLS[0])
    with pytest.raises(ValueError, match="appears twice"):
        schema.encode_pools(twice)


@pytest.mark.parametrize("stack", ["dev", "pr-42", "prod.eu"])
def test_namespace_per_stack(stack):
    assert schema.metric_namespace("djcelery", stack) == f"djcelery/{stack}/CeleryQueues"


@pytest.mark.parametrize("namespace", ["AWS/SQS", "", "has space", "x" * 256])
def test_invalid_namespaces_are_refused(namespace):
    with pytest.raises(ValueError, match="invalid CloudWatch namespace"):
        schema.validate_namespace(namespace)
