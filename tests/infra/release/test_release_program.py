"""The whole program under mocks: every stack runs migrations before any service rolls out."""

from __future__ import annotations

import json

import pytest

from infra.app_contract import SECRET_VARIABLES, Role, migrate_command
from infra.release.runner import LOG_STREAM_PREFIX
from testkit.program import ProgramRun, RecordedResource, stack_config

RELEASE_COMPONENT = "djcelery:index:Release"
DYNAMIC_RESOURCE = "pulumi-python:dynamic:Resource"
ECS_SERVICE = "aws:ecs/service:Service"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"


@pytest.fixture(params=["dev_run", "prod_run", "ephemeral_run"])
def program_run(request: pytest.FixtureRequest) -> ProgramRun:
    return request.getfixturevalue(request.param)


def migration_of(run: ProgramRun) -> RecordedResource:
    run.one(RELEASE_COMPONENT)
    # A child's URN carries its parent's type: <parent type>$<own type>::<name>.
    child_type_chain = f"{RELEASE_COMPONENT}${DYNAMIC_RESOURCE}::"
    children = [resource for resource in run.resources if child_type_chain in resource.urn]
    assert len(children) == 1, (
        f"the Release of stack {run.stack!r} must hold exactly one migration resource, has {children}"
    )
    return children[0]


def migrate_task_definition(run: ProgramRun) -> tuple[RecordedResource, dict]:
    """The task definition whose container is the migrate container, and that container."""
    found = [
        (resource, container)
        for resource in run.of_type(TASK_DEFINITION)
        for container in json.loads(resource.inputs["containerDefinitions"])
        if container["name"] == Role.MIGRATE.value
    ]
    assert len(found) == 1, (
        f"stack {run.stack!r} must declare one migrate task definition, found {len(found)}"
    )
    return found[0]


def test_every_stack_runs_the_migrate_task_of_the_deployed_image(program_run: ProgramRun) -> None:
    migration = migration_of(program_run).inputs
    task_definition, container = migrate_task_definition(program_run)

    assert migration["task_definition_arn"].endswith(
        f"task-definition/{task_definition.inputs['family']}:1"
    ), f"the release must run the migrate task definition, got {migration['task_definition_arn']}"
    assert "@sha256:" in migration["image"], (
        f"the release must follow the image digest, got {migration['image']}"
    )
    assert container["image"] == migration["image"], "the migrate task must run the image being released"
    assert container["command"] == migrate_command()
    logging = container["logConfiguration"]["options"]
    assert logging["awslogs-stream-prefix"] == LOG_STREAM_PREFIX, "the failure log tail reads this stream"
    assert logging["awslogs-group"] == migration["log_group_name"]
    assert {secret["name"] for secret in container["secrets"]} >= set(SECRET_VARIABLES), (
        "the migrate task needs the same secrets as the services"
    )
    configured = stack_config(program_run.stack)["djcelery:migrateTimeoutSeconds"]
    assert migration["timeout_seconds"] == float(configured), "the timeout must come from stack config"


def test_the_migrate_task_runs_in_the_service_network(program_run: ProgramRun) -> None:
    migration = migration_of(program_run).inputs
    services = program_run.of_type(ECS_SERVICE)
    assert services, f"stack {program_run.stack!r} declares no ECS service"
    networks = [service.inputs["networkConfiguration"] for service in services]

    assert all(sorted(network["subnets"]) == sorted(migration["subnet_ids"]) for network in networks), (
        f"the migrate task must run in the service subnets: {migration['subnet_ids']}, services: {networks}"
    )
    service_groups = {group for network in networks for group in network["securityGroups"]}
    assert set(migration["security_group_ids"]) <= service_groups, (
        "the migrate task must use the app security group, which the database admits"
    )
    assert {bool(network.get("assignPublicIp")) for network in networks} == {migration["assign_public_ip"]}


def test_every_ecs_service_waits_for_the_release(program_run: ProgramRun) -> None:
    migration = migration_of(program_run)
    services = program_run.of_type(ECS_SERVICE)
    assert services, f"stack {program_run.stack!r} declares no ECS service"

    not_waiting = [service.name for service in services if migration.urn not in service.dependencies]

    assert not not_waiting, (
        f"these services would roll out before migrations finish (add depends_on=[release]): {not_waiting}"
    )
