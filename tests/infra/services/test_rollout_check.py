"""The rollout check: `pulumi up` fails when ECS's circuit breaker rolled the web deployment back."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from infra.dynamic_providers import AwsClients
from infra.services.rollout import RolloutCheckProvider, RolloutError, RolloutTarget, check_rollout
from testkit.clock import FakeClock
from testkit.program import ProgramRun

CLUSTER = "arn:aws:ecs:us-east-1:123456789012:cluster/djcelery-dev"
SERVICE = "djcelery-dev-web"
NEW = "arn:aws:ecs:us-east-1:123456789012:task-definition/djcelery-dev-web:8"
OLD = "arn:aws:ecs:us-east-1:123456789012:task-definition/djcelery-dev-web:7"
TARGET = RolloutTarget(CLUSTER, SERVICE, NEW, timeout_seconds=60)
ROLLBACK_EVENT = "(service djcelery-dev-web) deployment ecs-svc/2 deployment failed: tasks failed to start."


def describe(
    *deployments: dict[str, Any], events: tuple[str, ...] = (), status: str = "ACTIVE"
) -> dict[str, Any]:
    return {
        "services": [
            {
                "serviceName": SERVICE,
                "status": status,
                "deployments": list(deployments),
                "events": [{"id": str(index), "message": message} for index, message in enumerate(events)],
            }
        ],
        "failures": [],
    }


def deployment(
    task_definition: str, status: str = "PRIMARY", rollout: str = "COMPLETED", **extra: str
) -> dict[str, Any]:
    return {
        "id": f"ecs-svc/{task_definition[-1]}",
        "status": status,
        "taskDefinition": task_definition,
        "rolloutState": rollout,
        **extra,
    }


def scripted(*answers: dict[str, Any]) -> tuple[Any, Stubber]:
    ecs = boto3.client("ecs", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    stubber = Stubber(ecs)
    for answer in answers:
        stubber.add_response("describe_services", answer, {"cluster": CLUSTER, "services": [SERVICE]})
    stubber.activate()
    return ecs, stubber


def test_a_completed_rollout_of_the_new_revision_passes() -> None:
    ecs, stubber = scripted(describe(deployment(NEW)))
    assert check_rollout(ecs, TARGET) == "ecs-svc/8"
    stubber.assert_no_pending_responses()


def test_a_rollout_in_progress_is_waited_for() -> None:
    clock = FakeClock(now=0.0)
    ecs, stubber = scripted(
        describe(deployment(NEW, rollout="IN_PROGRESS"), deployment(OLD, status="ACTIVE")),
        describe(deployment(NEW)),
    )
    check_rollout(ecs, TARGET, poll_interval_seconds=5, sleep=clock.sleep, clock=clock)
    assert clock.now == 5
    stubber.assert_no_pending_responses()


def test_a_circuit_breaker_rollback_fails_the_update_with_the_reason() -> None:
    rolled_back = describe(
        deployment(
            OLD, rollout="IN_PROGRESS", rolloutStateReason="ECS deployment circuit breaker: rolling back"
        ),
        deployment(NEW, status="ACTIVE", rollout="FAILED"),
        events=(ROLLBACK_EVENT,),
    )
    ecs, _ = scripted(rolled_back)
    with pytest.raises(RolloutError) as failure:
        check_rollout(ecs, TARGET)
    message = str(failure.value)
    assert f"rolled the {SERVICE} deployment back" in message and OLD in message and NEW in message
    assert ROLLBACK_EVENT in message, "the service's own events say why"
    assert "previous version keeps serving" in message


def test_a_failed_rollout_of_the_new_revision_fails_the_update() -> None:
    ecs, _ = scripted(describe(deployment(NEW, rollout="FAILED", rolloutStateReason="tasks failed to start")))
    with pytest.raises(RolloutError, match="failed: tasks failed to start"):
        check_rollout(ecs, TARGET)


def test_a_rollout_stuck_past_the_deadline_fails_the_update() -> None:
    clock = FakeClock(now=0.0)
    stuck = describe(deployment(NEW, rollout="IN_PROGRESS"))
    ecs, _ = scripted(*[stuck] * 7)
    with pytest.raises(RolloutError, match="still IN_PROGRESS after 60 s"):
        check_rollout(ecs, TARGET, poll_interval_seconds=10, sleep=clock.sleep, clock=clock)


def test_a_missing_service_is_named() -> None:
    ecs, _ = scripted(describe(status="INACTIVE"))
    with pytest.raises(RolloutError, match=f"no active service {SERVICE}"):
        check_rollout(ecs, TARGET)


def test_the_provider_checks_on_a_new_revision_only() -> None:
    ecs, stubber = scripted(describe(deployment(NEW)))
    provider = RolloutCheckProvider(clients=lambda region: AwsClients(ecs=ecs, logs=None))
    props = {
        "cluster": CLUSTER,
        "service": SERVICE,
        "task_definition_arn": NEW,
        "region": "us-east-1",
        "timeout_seconds": 60,
    }
    created = provider.create(props)
    assert created.outs["deployment_id"] == "ecs-svc/8"
    assert provider.diff("id", created.outs, props).changes is False, "no new revision, nothing to check"
    assert provider.diff(
        "id", created.outs, {**props, "task_definition_arn": OLD.replace(":7", ":9")}
    ).changes
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize("run_name", ["dev_run", "prod_run", "ephemeral_run"])
def test_every_stack_checks_the_web_rollout_after_the_web_service(
    run_name: str, request: pytest.FixtureRequest
) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    check = run.one("pulumi-python:dynamic:Resource", "web-rollout")
    web_service = run.one("aws:ecs/service:Service", "web-service")
    web_task = run.one("aws:ecs/taskDefinition:TaskDefinition", "web-task-definition")
    assert web_service.urn in check.dependencies, "the check runs once the service update is done"
    assert check.inputs["task_definition_arn"] == web_task.state["arn"]
    assert check.inputs["service"] == web_service.inputs["name"]
