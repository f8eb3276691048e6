"""Queue-length autoscaling as the whole program wires it: every worker pool gets a scalable target,
and the queue-metrics publisher measures exactly those pools' services on that cluster."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from infra import app_contract
from infra.stack import StackConfig, validate
from queuemetrics import schema
from testkit.program import ProgramRun
from tests.infra.services.ecs_api import container_definitions

TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
SERVICE = "aws:ecs/service:Service"
CLUSTER = "aws:ecs/cluster:Cluster"
TARGET = "aws:appautoscaling/target:Target"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
STACKS = ["dev_run", "prod_run", "ephemeral_run", "custom_run"]


def stack_config(run: ProgramRun) -> StackConfig:
    return validate(run.config)


def publisher_container(run: ProgramRun) -> tuple[str, dict]:
    """The task that carries the publisher (Beat, or its own task without Beat) and its container."""
    for definition in run.of_type(TASK_DEFINITION):
        for container in container_definitions(definition):
            if container["command"] == app_contract.queue_metrics_command():
                return definition.name.removesuffix("-task-definition"), container
    raise AssertionError(f"{run.stack}: no container runs the queue-metrics publisher")


def environment(container: dict) -> dict[str, str]:
    return {variable["name"]: variable["value"] for variable in container["environment"]}


@pytest.mark.parametrize("run_name", STACKS)
def test_every_worker_pool_has_a_scalable_target_on_its_own_service(run_name: str, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    cluster_name = run.one(CLUSTER).inputs["name"]
    pools = {pool.name: pool for pool in stack_config(run).workers.pools}
    targets = {target.name.removesuffix("-autoscaling-target"): target for target in run.of_type(TARGET)}
    targets.pop("web")  # web scales on requests and CPU (tests/infra/web)
    assert sorted(targets) == sorted(f"worker-{name}" for name in pools), "one scalable target per pool"
    for name, pool in pools.items():
        target = targets[f"worker-{name}"].inputs
        service_name = run.one(SERVICE, f"worker-{name}-service").inputs["name"]
        assert target["resourceId"] == f"service/{cluster_name}/{service_name}"
        assert (target["minCapacity"], target["maxCapacity"]) == (
            pool.scaling.min_count,
            pool.scaling.max_count,
        ), name


@pytest.mark.parametrize("run_name", STACKS)
def test_the_publisher_measures_exactly_the_worker_services_the_stack_declares(
    run_name: str, request
) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    task, container = publisher_container(run)
    variables = environment(container)
    assert variables[app_contract.ECS_CLUSTER] == run.one(CLUSTER).inputs["name"]
    assert variables[app_contract.QUEUE_METRICS_NAMESPACE] == run.outputs["queueMetricsNamespace"]
    assert int(variables[app_contract.QUEUE_METRICS_INTERVAL_SECONDS]) == (
        stack_config(run).workers.timings.publish_interval_seconds
    )
    measured = {spec.pool: spec for spec in schema.parse_pools(variables[app_contract.QUEUE_METRICS_POOLS])}
    for pool in stack_config(run).workers.pools:
        spec = measured.pop(pool.name)
        assert spec.queues == pool.queues
        assert spec.service == run.one(SERVICE, f"worker-{pool.name}-service").inputs["name"]
    assert not measured, f"the publisher measures pools the stack does not run: {sorted(measured)}"
    # PutMetricData is only allowed into the stack's namespace; nothing else is granted.
    statements = json.loads(run.one(ROLE_POLICY, f"{task}-task-queue-metrics").inputs["policy"])["Statement"]
    assert {statement["Action"] for statement in statements} == {
        "cloudwatch:PutMetricData",
        "ecs:DescribeServices",
    }
    [put] = [statement for statement in statements if statement["Action"] == "cloudwatch:PutMetricData"]
    namespace = run.outputs["queueMetricsNamespace"]
    assert put["Condition"] == {"StringEquals": {"cloudwatch:namespace": namespace}}


def test_the_publisher_is_a_restartable_sidecar_of_beat(dev_run: ProgramRun) -> None:
    task, container = publisher_container(dev_run)
    assert task == "beat"
    assert container["essential"] is False, "a metrics failure must never stop the scheduler"
    assert container["restartPolicy"] == {"enabled": True}


def test_without_beat_the_publisher_runs_as_its_own_single_task_service(custom_run: ProgramRun) -> None:
    assert not stack_config(custom_run).beat.enabled
    task, container = publisher_container(custom_run)
    assert task == "queue-metrics"
    assert container["essential"] is True
    assert custom_run.one(SERVICE, "queue-metrics-service").inputs["desiredCount"] == 1


@pytest.mark.parametrize("run_name", STACKS)
def test_only_workers_may_protect_themselves_and_only_on_the_stack_cluster(run_name: str, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    cluster_name = run.one(CLUSTER).inputs["name"]
    pools = [pool.name for pool in stack_config(run).workers.pools]
    protecting = {}
    for policy in run.of_type(ROLE_POLICY):
        for statement in json.loads(policy.inputs["policy"])["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if any(action.startswith("ecs:") and "TaskProtection" in action for action in actions):
                protecting[policy.name] = statement
    assert sorted(protecting) == sorted(f"worker-{pool}-task-scale-in-protection" for pool in pools)
    for statement in protecting.values():
        assert statement["Action"] == "ecs:UpdateTaskProtection", "the worker never reads it back (GET)"
        assert statement["Resource"] == f"arn:aws:ecs:us-east-1:123456789012:task/{cluster_name}/*"


def test_a_short_task_pool_reserves_messages_ahead(custom_run: ProgramRun) -> None:
    commands = {
        definition.name.removesuffix("-task-definition"): container_definitions(definition)[0]["command"]
        for definition in custom_run.of_type(TASK_DEFINITION)
    }
    expected = app_contract.worker_command("fast", ["default"], 8, prefetch_multiplier=4)
    assert commands["worker-fast"] == expected
    assert commands["worker-fast"][-2:] == ["--prefetch-multiplier", "4"]
    assert "--prefetch-multiplier" not in commands["worker-bulk"], "the settings' 1 by default"


def test_a_pool_can_cap_the_memory_of_each_worker_process(custom_run: ProgramRun) -> None:
    """Celery's `--max-memory-per-child` takes KiB ("Maximum amount of resident memory, in KiB, that
    may be consumed by a child process before it will be replaced", `celery worker --help`)."""
    help_text = subprocess.run(
        [str(Path(sys.executable).with_name("celery")), "worker", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--max-memory-per-child" in help_text and "KiB" in " ".join(help_text.split())
    commands = {
        definition.name.removesuffix("-task-definition"): container_definitions(definition)[0]["command"]
        for definition in custom_run.of_type(TASK_DEFINITION)
    }
    assert commands["worker-bulk"][-2:] == ["--max-memory-per-child", str(768 * 1024)], "768 MiB in KiB"
    assert "--max-memory-per-child" not in commands["worker-fast"], "no limit unless the pool sets one"
