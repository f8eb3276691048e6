"""A thin preview runs as one ECS service whose one Spot task holds web, a worker and Beat.

Expected values come from AWS's documentation, not from the program:
- botocore's ECS model, shape `DeploymentConfiguration`: `minimumHealthyPercent` is "a lower limit
  on the number of your service's tasks that must remain in the RUNNING state during a deployment"
  and `maximumPercent` "an upper limit on the number of your service's tasks that are allowed in
  the RUNNING or PENDING state during a deployment", both as a percentage of `desiredCount`; with
  one task, 0 % and 100 % stop the old task before the new one starts (ECS developer guide,
  "Deploy Amazon ECS services by replacing tasks": minimumHealthyPercent and maximumPercent), so
  two Beats never run at once;
- the ECS developer guide, "Amazon ECS task definition parameters for Fargate", table "Task CPU and
  memory": 256 CPU units (.25 vCPU) take 512 MiB, 1 GB or 2 GB;
- the ECS developer guide, "AWS Fargate capacity providers": FARGATE_SPOT runs tasks on Spot.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra import app_contract
from infra.ops.stack import DeployedStack
from testkit.previews import run_preview
from testkit.program import ProgramRun, RecordedResource
from tests.infra.services.ecs_api import (
    api_errors,
    container_definitions,
    create_service_params,
    register_task_definition_params,
)

SERVICE = "aws:ecs/service:Service"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
# ECS developer guide, "Task CPU and memory": the memory values (MiB) Fargate accepts at .25 vCPU.
QUARTER_VCPU = 256
QUARTER_VCPU_MEMORY = {512, 1024, 2048}
TWO_POOLS = [
    {
        "name": "fast",
        "queues": ["default"],
        "concurrency": 4,
        "cpu": 256,
        "memory": 512,
        "minCount": 0,
        "maxCount": 2,
        "spot": True,
        "targetLatencySeconds": 60,
        "taskSeconds": 2,
    },
    {
        "name": "mail",
        "queues": ["email", "bulk"],
        "concurrency": 2,
        "cpu": 256,
        "memory": 512,
        "minCount": 0,
        "maxCount": 1,
        "spot": True,
        "targetLatencySeconds": 60,
        "taskSeconds": 2,
    },
]


def the_service(run: ProgramRun) -> RecordedResource:
    [service] = run.of_type(SERVICE)
    return service


def task_of(run: ProgramRun, service: RecordedResource) -> RecordedResource:
    arn = service.inputs["taskDefinition"]
    [definition] = [d for d in run.of_type(TASK_DEFINITION) if d.state["arn"] == arn]
    return definition


def by_role(definition: RecordedResource) -> dict[str, dict[str, Any]]:
    return {app_contract.role_of(c["command"]).value: c for c in container_definitions(definition)}


@pytest.fixture(scope="module")
def two_pools_without_beat(preview_base_run: ProgramRun) -> ProgramRun:
    return run_preview(preview_base_run, workerPools=json.dumps(TWO_POOLS), beatEnabled="false")


def test_a_preview_declares_exactly_one_service_on_spot(preview_run: ProgramRun) -> None:
    service = the_service(preview_run)
    assert api_errors("CreateService", create_service_params(service)) == ""
    assert service.inputs["capacityProviderStrategies"] == [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]
    assert service.inputs["desiredCount"] == 1


def test_a_deploy_stops_the_old_task_before_the_new_one_starts(preview_run: ProgramRun) -> None:
    """One task: minimum 0 % lets ECS stop it first, maximum 100 % forbids a second one beside it
    (DeploymentConfiguration, see the module docstring); no AZ rebalancing starts one either."""
    inputs = the_service(preview_run).inputs
    assert inputs["deploymentMinimumHealthyPercent"] == 0
    assert inputs["deploymentMaximumPercent"] == 100
    assert inputs["availabilityZoneRebalancing"] == "DISABLED"
    assert inputs["waitForSteadyState"] is True  # `pulumi up` returns once the preview answers
    assert inputs["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}


def test_one_task_holds_web_a_worker_and_beat(preview_run: ProgramRun) -> None:
    definition = task_of(preview_run, the_service(preview_run))
    assert api_errors("RegisterTaskDefinition", register_task_definition_params(definition)) == ""
    containers = container_definitions(definition)
    assert [app_contract.role_of(c["command"]) for c in containers] == ["web", "worker", "beat"]
    assert all(container["essential"] is True for container in containers)
    assert not any("cpu" in container or "memory" in container for container in containers)
    cpu, memory = int(definition.inputs["cpu"]), int(definition.inputs["memory"])
    assert cpu == QUARTER_VCPU and memory in QUARTER_VCPU_MEMORY
    assert memory == 1024


def test_the_web_container_is_the_load_balancer_target(preview_run: ProgramRun) -> None:
    service = the_service(preview_run)
    [target] = service.inputs["loadBalancers"]
    target_group = preview_run.one("aws:lb/targetGroup:TargetGroup")
    assert target["targetGroupArn"] == target_group.state["arn"]
    assert (target["containerName"], target["containerPort"]) == ("web", app_contract.CONTAINER_PORT)
    web = by_role(task_of(preview_run, service))["web"]
    assert web["name"] == "web"
    assert web["portMappings"] == [{"containerPort": app_contract.CONTAINER_PORT, "protocol": "tcp"}]


def test_the_worker_consumes_every_queue_one_message_at_a_time(
    preview_run: ProgramRun, two_pools_without_beat: ProgramRun
) -> None:
    every_queue = {"default", "email", "bulk"}
    for run, queues in ((preview_run, {"default", "email"}), (two_pools_without_beat, every_queue)):
        worker = by_role(task_of(run, the_service(run)))["worker"]
        command = worker["command"]
        assert set(command[command.index("--queues") + 1].split(",")) == queues
        assert command[command.index("--concurrency") + 1] == "1"
        assert "--prefetch-multiplier" not in command
        assert app_contract.WORKER_HEARTBEAT_FILE in worker["healthCheck"]["command"][1]


def test_without_beat_the_task_holds_web_and_the_worker(two_pools_without_beat: ProgramRun) -> None:
    definition = task_of(two_pools_without_beat, the_service(two_pools_without_beat))
    assert sorted(by_role(definition)) == ["web", "worker"]
    assert two_pools_without_beat.outputs["beatServiceName"] is None


def test_a_preview_has_no_autoscaling_alarm_canary_or_queue_metrics(
    preview_run: ProgramRun, two_pools_without_beat: ProgramRun
) -> None:
    for run in (preview_run, two_pools_without_beat):
        assert not run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        assert not run.of_type("aws:appautoscaling/target:Target")
        assert not run.of_type("aws:appautoscaling/policy:Policy")
        definitions = run.of_type(TASK_DEFINITION)
        roles = {app_contract.role_of(c["command"]) for d in definitions for c in container_definitions(d)}
        assert app_contract.Role.QUEUE_METRICS not in roles
        # A worker canary is the dynamic resource with a window (infra/workers/canary_provider.py).
        assert not [r for r in run.of_type("pulumi-python:dynamic:Resource") if "window_minutes" in r.inputs]


def test_the_service_starts_after_secrets_tenant_release_and_rule(preview_run: ProgramRun) -> None:
    """The engine records a dependency on a component as one on each of its resources."""
    service = the_service(preview_run)
    dynamic = {r.name: r for r in preview_run.of_type("pulumi-python:dynamic:Resource")}
    versions = preview_run.of_type("aws:secretsmanager/secretVersion:SecretVersion")
    rule = preview_run.one("aws:lb/listenerRule:ListenerRule")
    for prerequisite in (dynamic["tenant"], dynamic["release-migrate"], rule, *versions):
        assert prerequisite.urn in service.dependencies, prerequisite.name


def test_the_outputs_name_the_one_service_for_every_role(
    preview_run: ProgramRun, two_pools_without_beat: ProgramRun
) -> None:
    for run, pools in ((preview_run, {"default"}), (two_pools_without_beat, {"fast", "mail"})):
        service = the_service(run)
        name = service.state["name"]
        definition = task_of(run, service)
        outputs = run.outputs
        assert outputs["webServiceName"] == name
        assert outputs["workerServiceNames"] == dict.fromkeys(pools, name)
        assert outputs["webTaskDefinitionArn"] == definition.state["arn"]
        assert outputs["webContainerName"] == "web"
        assert outputs["webTestHeaderValue"] is None
        group = {c["logConfiguration"]["options"]["awslogs-group"] for c in container_definitions(definition)}
        assert set(outputs["logGroupNames"].values()) - {outputs["logGroupNames"]["migrate"]} == group
        assert {f"worker-{pool}" for pool in pools} < set(outputs["logGroupNames"])
    assert preview_run.outputs["beatServiceName"] == the_service(preview_run).state["name"]


def test_ops_commands_read_a_preview_like_any_stack(preview_run: ProgramRun) -> None:
    stack = DeployedStack.from_outputs("pr-42", "us-east-1", preview_run.outputs)
    assert stack.web_service_name == the_service(preview_run).state["name"]
    assert stack.web_container_name == "web"
    # `manage` runs a one-off task: ECS starts every container of a task definition (RunTask
    # `overrides.containerOverrides` only change a named container's command; ECS developer guide,
    # "Amazon ECS task definition parameters": a task runs all its containers), so one-off commands
    # run the migrate task definition, of one container: never a second Beat or worker.
    one_off = [
        definition
        for definition in preview_run.of_type("aws:ecs/taskDefinition:TaskDefinition")
        if definition.state["arn"] == stack.one_off_task_definition_arn
    ]
    assert [[c["name"] for c in container_definitions(d)] for d in one_off] == [["migrate"]], (
        "a one-off command must run a task definition with the migrate container alone"
    )
    assert stack.one_off_log_group == preview_run.outputs["logGroupNames"]["migrate"]
