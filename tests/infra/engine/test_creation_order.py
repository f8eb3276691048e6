"""Start readiness: every ECS task launch waits for everything its containers need at start."""

from __future__ import annotations

from dataclasses import replace

import pytest

from testkit.engine.graph import DependencyGraph
from testkit.engine.readiness import launches, missing_before_start, start_requirements
from testkit.program import ProgramRun, RecordedResource

STACKS = ["dev_run", "prod_run", "ephemeral_run", "custom_run"]


@pytest.mark.parametrize("run_name", STACKS)
def test_every_task_launch_waits_for_what_its_containers_need(
    run_name: str, request: pytest.FixtureRequest
) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    assert missing_before_start(run) == {}, (
        f"stack {run.stack}: ECS would start these tasks before what they need exists "
        "(ResourceInitializationError on the first `pulumi up`)"
    )


@pytest.mark.parametrize("run_name", STACKS)
def test_the_rule_sees_every_launch_and_its_needs(run_name: str, request: pytest.FixtureRequest) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    graph = DependencyGraph(run)
    found = {launch.resource.name: launch for launch in launches(run)}
    services = {service.name for service in run.of_type("aws:ecs/service:Service")}
    assert services and services <= set(found), "every ECS service is a launch"
    assert "release-migrate" in found, "the release's one-off migrate task is a launch"
    for name, launch in found.items():
        kinds = {resource.type.split(":")[1] for resource in start_requirements(graph, launch)}
        expected = {
            "ecs/taskDefinition",
            "iam/rolePolicy",
            "cloudwatch/logGroup",
            "secretsmanager/secretVersion",
            "rds/instance",
            "elasticache/replicationGroup",
            "ec2/routeTable",
            "ec2/routeTableAssociation",
            "vpc/securityGroupEgressRule",
        }
        assert expected <= kinds, f"{name}: the rule misses {expected - kinds}"
        assert {"ec2/natGateway", "ec2/internetGateway"} & kinds, f"{name}: no gateway out of its subnets"


def test_a_release_that_waits_only_for_its_inputs_is_caught(dev_run: ProgramRun) -> None:
    """The defect this rule exists for: the migrate task waiting for the image and the task
    definition only, so ECS starts it minutes before the database and the secret values exist.
    (The task definitions now also follow the secret values' versions, which this control removes
    to see the rule catch what the program waited for before.)"""
    release = dev_run.one("pulumi-python:dynamic:Resource", "release")
    migrate = dev_run.one("aws:ecs/taskDefinition:TaskDefinition", "migrate")
    versions = {version.urn for version in dev_run.of_type("aws:secretsmanager/secretVersion:SecretVersion")}
    inputs_only = tuple(sorted({urn for urns in release.property_dependencies.values() for urn in urns}))

    def as_before(resource: RecordedResource) -> RecordedResource:
        if resource is release:
            return replace(resource, dependencies=inputs_only)
        if resource is migrate:
            return replace(resource, dependencies=tuple(sorted(set(resource.dependencies) - versions)))
        return resource

    broken = replace(dev_run, resources=[as_before(resource) for resource in dev_run.resources])
    missing = missing_before_start(broken)["release-migrate"]
    for needed in (
        "Instance database-postgres",
        "ReplicationGroup broker-redis",
        "SecretVersion secrets-database-url",
    ):
        assert any(needed in item for item in missing), f"the rule must report {needed}: {missing}"
    assert any("RouteTableAssociation" in item for item in missing), missing
