"""A worker pool's canary: the verdict on its task runs, and the provider that runs it before the
pool rolls.

ECS is a botocore Stubber (moto's ECS runs no containers), which checks every request against the
ECS API model; CloudWatch Logs (the canary's log lines) and CloudWatch (the pool's backlog) are moto.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from infra.workers.canary import (
    EARLY_FAILURES,
    STARTED_BY,
    CanaryError,
    canary_verdict,
    failing_early,
)
from infra.workers.canary_provider import CanaryClients, WorkerCanaryProvider
from queuemetrics import schema
from queuemetrics.outcomes import FAILURE, RETRY, SUCCESS, TaskOutcome
from testkit.clock import FakeClock
from testkit.program import ProgramRun

REGION = "eu-west-1"
CLUSTER = "arn:aws:ecs:eu-west-1:123456789012:cluster/djcelery-prod"
SERVICE = "djcelery-prod-worker-email"
NEW = "arn:aws:ecs:eu-west-1:123456789012:task-definition/djcelery-prod-worker-email:8"
OLD = "arn:aws:ecs:eu-west-1:123456789012:task-definition/djcelery-prod-worker-email:7"
TASK_ID = "5b4a39281706f5e4d3c2b1a098765432"
TASK_ARN = f"arn:aws:ecs:{REGION}:123456789012:task/djcelery-prod/{TASK_ID}"
LOG_GROUP = "/ecs/djcelery-prod/worker-email"
STREAM = f"worker/worker/{TASK_ID}"
NAMESPACE = "djcelery/prod/CeleryQueues"
DIGEST = "sha256:" + "b" * 64
SEND = "signups.tasks.send_welcome_email"
PROPS: dict[str, Any] = {
    "pool": "email",
    "cluster": CLUSTER,
    "service": SERVICE,
    "task_definition_arn": NEW,
    "container_name": "worker",
    "subnet_ids": ["subnet-a"],
    "security_group_ids": ["sg-app"],
    "assign_public_ip": False,
    "log_group_name": LOG_GROUP,
    "image_digest": DIGEST,
    "metric_namespace": NAMESPACE,
    "region": REGION,
    "window_minutes": 5,
    "max_failure_percent": 20,
    "stop_timeout_seconds": 120,
}


def run(outcome: str, error: str = "", digest: str = DIGEST) -> TaskOutcome:
    return TaskOutcome(outcome, SEND, "id", digest, error)


# --- The verdict ----------------------------------------------------------------------------------


def test_a_canary_whose_runs_fail_more_than_allowed_fails_and_names_sample_errors() -> None:
    runs = [run(SUCCESS)] * 3 + [run(FAILURE, "OperationalError: no database")] * 2 + [run(RETRY, "Timeout")]
    verdict = canary_verdict(runs, max_failure_percent=20, messages_waited=True)
    assert not verdict.passed
    assert (verdict.runs, verdict.failed, round(verdict.failure_percent)) == (6, 3, 50)
    assert verdict.sample_errors == (f"{SEND}: OperationalError: no database", f"{SEND}: Timeout")


def test_a_canary_within_the_limit_passes() -> None:
    runs = [run(SUCCESS)] * 9 + [run(FAILURE, "SMTPServerDisconnected")]
    verdict = canary_verdict(runs, max_failure_percent=20, messages_waited=True)
    assert verdict.passed and verdict.failure_percent == 10


def test_a_canary_that_finishes_nothing_fails_only_while_messages_waited() -> None:
    assert not canary_verdict([], 20, messages_waited=True).passed
    assert "finished no task while messages waited" in canary_verdict([], 20, messages_waited=True).reason
    assert canary_verdict([], 20, messages_waited=False).passed


def test_the_window_stops_early_only_after_enough_failures() -> None:
    assert not failing_early([run(FAILURE, "x")] * (EARLY_FAILURES - 1), 20)
    assert failing_early([run(FAILURE, "x")] * EARLY_FAILURES, 20)
    assert not failing_early([run(FAILURE, "x")] * EARLY_FAILURES + [run(SUCCESS)] * 100, 20)


# --- The provider, against ECS, CloudWatch Logs and CloudWatch -----------------------------------


@dataclass
class Aws:
    ecs: Any
    stubber: Stubber
    logs: Any
    cloudwatch: Any

    def clients(self, region: str) -> CanaryClients:
        assert region == REGION
        return CanaryClients(ecs=self.ecs, logs=self.logs, cloudwatch=self.cloudwatch)

    def service_runs(self, task_definition: str | None) -> None:
        services = [{"serviceName": SERVICE, "status": "ACTIVE", "taskDefinition": task_definition}]
        self.stubber.add_response(
            "describe_services",
            {"services": services if task_definition else [], "failures": []},
            {"cluster": CLUSTER, "services": [SERVICE]},
        )

    def canary_starts(self) -> None:
        self.stubber.add_response(
            "run_task",
            {"tasks": [{"taskArn": TASK_ARN, "lastStatus": "PROVISIONING"}], "failures": []},
            {
                "cluster": CLUSTER,
                "taskDefinition": NEW,
                "launchType": "FARGATE",
                "count": 1,
                "startedBy": STARTED_BY,
                "networkConfiguration": {
                    "awsvpcConfiguration": {
                        "subnets": ["subnet-a"],
                        "securityGroups": ["sg-app"],
                        "assignPublicIp": "DISABLED",
                    }
                },
            },
        )

    def task_is(self, status: str, exit_code: int | None = None) -> None:
        container: dict[str, Any] = {"name": "worker"}
        if exit_code is not None:
            container["exitCode"] = exit_code
        task = {"taskArn": TASK_ARN, "lastStatus": status, "containers": [container]}
        if status == "STOPPED":
            task["stoppedReason"] = "Essential container in task exited"
        self.stubber.add_response(
            "describe_tasks", {"tasks": [task], "failures": []}, {"cluster": CLUSTER, "tasks": [TASK_ARN]}
        )

    def canary_is_stopped(self) -> None:
        self.stubber.add_response(
            "stop_task",
            {"task": {"taskArn": TASK_ARN, "lastStatus": "RUNNING"}},
            {"cluster": CLUSTER, "task": TASK_ARN, "reason": "worker canary of pool email is over"},
        )

    def canary_logs(self, *outcomes: TaskOutcome) -> None:
        lines = [json.dumps({"message": "celery worker starting", "level": "INFO"})] + [
            json.dumps(
                {
                    "event": "task_outcome",
                    "outcome": o.outcome,
                    "task": o.task,
                    "task_id": o.task_id,
                    "image_digest": o.image_digest,
                    "error": o.error,
                }
            )
            for o in outcomes
        ]
        now = int(datetime.now(UTC).timestamp() * 1000)
        events = [{"timestamp": now, "message": line} for line in lines]
        self.logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=STREAM, logEvents=events)

    def backlog_was(self, messages: int) -> None:
        self.cloudwatch.put_metric_data(
            Namespace=NAMESPACE,
            MetricData=[
                {
                    "MetricName": schema.POOL_BACKLOG.name,
                    "Dimensions": [{"Name": "Pool", "Value": "email"}],
                    "Timestamp": datetime.now(UTC),
                    "Value": messages,
                }
            ],
        )


@pytest.fixture
def aws() -> Iterator[Aws]:
    ecs = botocore.session.get_session().create_client(
        "ecs", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with mock_aws(), Stubber(ecs) as stubber:
        logs = boto3.client("logs", region_name=REGION)
        logs.create_log_group(logGroupName=LOG_GROUP)
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=STREAM)
        yield Aws(ecs, stubber, logs, boto3.client("cloudwatch", region_name=REGION))
        stubber.assert_no_pending_responses()


def provider(aws: Aws, clock: FakeClock) -> WorkerCanaryProvider:
    return WorkerCanaryProvider(
        clients=aws.clients,
        sleep=clock.sleep,
        clock=clock,
        poll_interval_seconds=PROPS["window_minutes"] * 60,
    )


def test_a_failing_canary_stops_early_gracefully_and_fails_the_update_naming_pool_rate_and_errors(
    aws: Aws,
) -> None:
    clock = FakeClock()
    aws.service_runs(OLD)
    aws.canary_starts()
    aws.task_is("RUNNING")
    aws.canary_logs(
        *[run(FAILURE, "OperationalError: connection refused")] * EARLY_FAILURES, run(SUCCESS, digest="")
    )
    aws.canary_is_stopped()  # SIGTERM: Celery's warm shutdown; unfinished messages go back
    aws.task_is("STOPPED", exit_code=0)
    with pytest.raises(CanaryError) as failed:
        provider(aws, clock).update("id", {**PROPS, "task_definition_arn": OLD}, PROPS)
    message = str(failed.value)
    assert "Worker canary of pool 'email' failed" in message
    assert "Failure rate 100 % (5 of 5)" in message, "the old image's line is not the canary's"
    assert f"{SEND}: OperationalError: connection refused" in message
    assert "keeps running its previous image" in message
    assert clock.sleeps == [], "it stopped at the first look, not after the window"


def test_a_healthy_canary_runs_its_window_then_stops_and_passes(aws: Aws) -> None:
    clock = FakeClock()
    aws.service_runs(OLD)
    aws.canary_starts()
    aws.task_is("PENDING")
    aws.task_is("RUNNING")
    aws.canary_logs(*[run(SUCCESS)] * 4, run(RETRY, "SoftTimeLimitExceeded"))  # 20 %: not more
    aws.task_is("RUNNING")
    aws.canary_is_stopped()
    aws.task_is("STOPPED", exit_code=0)
    aws.backlog_was(12)
    result = provider(aws, clock).update("id", {**PROPS, "task_definition_arn": OLD}, PROPS)
    assert result.outs["verdict"] == "passed: 4 of 5 task runs succeeded"
    assert (result.outs["runs"], result.outs["failed"], result.outs["task_arn"]) == (5, 1, TASK_ARN)
    assert sum(clock.sleeps) >= PROPS["window_minutes"] * 60, "it watched the whole window"


def test_a_canary_that_takes_no_message_while_the_pool_has_a_backlog_fails(aws: Aws) -> None:
    clock = FakeClock()
    aws.service_runs(OLD)
    aws.canary_starts()
    aws.task_is("RUNNING")
    aws.task_is("RUNNING")
    aws.canary_is_stopped()
    aws.task_is("STOPPED", exit_code=0)
    aws.backlog_was(40)
    with pytest.raises(CanaryError, match="finished no task while messages waited"):
        provider(aws, clock).create(PROPS)


def test_a_canary_that_exits_by_itself_fails(aws: Aws) -> None:
    clock = FakeClock()
    aws.service_runs(OLD)
    aws.canary_starts()
    aws.task_is("STOPPED", exit_code=1)
    with pytest.raises(CanaryError, match=r"stopped by itself \(stop code: none; stopped reason: Essential"):
        provider(aws, clock).create(PROPS)


@pytest.mark.parametrize(("running", "why"), [(None, "does not run yet"), (NEW, "already runs it")])
def test_no_canary_for_a_new_pool_or_a_pool_that_already_runs_the_task_definition(
    aws: Aws, running: str | None, why: str
) -> None:
    aws.service_runs(running)
    result = provider(aws, FakeClock()).create(PROPS)
    assert why in result.outs["verdict"] and result.outs["verdict"].startswith("skipped")


def test_only_a_new_task_definition_runs_a_canary_again(aws: Aws) -> None:
    canary = provider(aws, FakeClock())
    assert not canary.diff("id", PROPS, {**PROPS, "window_minutes": 9}).changes
    assert canary.diff("id", {**PROPS, "task_definition_arn": OLD}, PROPS).changes


def test_each_pool_of_prod_gates_its_service_on_its_canary(prod_run: ProgramRun) -> None:
    for pool in ("default", "email"):
        canary = prod_run.one("pulumi-python:dynamic:Resource", f"worker-{pool}-canary")
        service = prod_run.one("aws:ecs/service:Service", f"worker-{pool}-service")
        task_definition = prod_run.one("aws:ecs/taskDefinition:TaskDefinition", f"worker-{pool}-task")
        assert canary.urn in service.dependencies, f"{pool}: the service must wait for its canary"
        assert canary.inputs["task_definition_arn"] == task_definition.state["arn"]
        [worker] = json.loads(task_definition.inputs["containerDefinitions"])
        environment = {item["name"]: item["value"] for item in worker["environment"]}
        assert canary.inputs["image_digest"] == environment["IMAGE_DIGEST"]
        assert (canary.inputs["window_minutes"], canary.inputs["max_failure_percent"]) == (5, 20)
    assert not [r for r in prod_run.resources if r.name.startswith("beat") and "canary" in r.name]


def test_dev_runs_no_canary(dev_run: ProgramRun) -> None:
    assert not [resource for resource in dev_run.resources if resource.name.endswith("-canary")]
