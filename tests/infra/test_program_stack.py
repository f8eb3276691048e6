"""Whole-stack properties: outputs, tags, structure, and what an ephemeral stack must never have."""

import json

import pytest

from infra.ops.stack import DeployedStack
from infra.stack import validate
from testkit.program import ProgramFailed, ProgramRun, run_program

EXPORTS = {
    "webUrl",
    "albDnsName",
    "clusterName",
    "clusterArn",
    "webServiceName",
    "webTestHeaderValue",
    "workerServiceNames",
    "beatServiceName",
    "ecrRepositoryUrl",
    "imageRef",
    "release",
    "logGroupNames",
    "secretArns",
    "serviceSubnetIds",
    "appSecurityGroupId",
    "assignPublicIp",
    "webTaskDefinitionArn",
    "migrateTaskDefinitionArn",
    "webContainerName",
    "queueMetricsNamespace",
    "alarmTopicArn",
    "dashboardName",
    "dbInstanceIdentifier",
    "mediaBucketName",
    "execAuditLogGroupName",
    "dataKeyArn",
}
STACKS = ["dev_run", "prod_run", "ephemeral_run", "custom_run"]


def secret_values(run: ProgramRun) -> list[str]:
    generated = [
        password.state["result"] for password in run.of_type("random:index/randomPassword:RandomPassword")
    ]
    stored = [
        version.inputs["secretString"]
        for version in run.of_type("aws:secretsmanager/secretVersion:SecretVersion")
    ]
    return generated + stored


@pytest.mark.parametrize("run_name", STACKS)
def test_exports_are_complete_plain_and_free_of_secret_values(run_name: str, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    assert set(run.outputs) == EXPORTS
    # The one secret output: the header value that reaches a web revision before users do.
    shifts_traffic = run.outputs["webTestHeaderValue"] is not None
    assert run.secret_outputs == ({"webTestHeaderValue"} if shifts_traffic else set())
    exported = json.dumps(
        {name: value for name, value in run.outputs.items() if name not in run.secret_outputs}
    )
    assert not [value for value in secret_values(run) if value in exported], "a secret value is exported"
    assert run.outputs["clusterName"] == run.one("aws:ecs/cluster:Cluster").state["name"]
    assert run.outputs["webServiceName"] == run.one("aws:ecs/service:Service", "web-").state["name"]
    assert (
        run.outputs["webTaskDefinitionArn"]
        == run.one("aws:ecs/taskDefinition:TaskDefinition", "web-").state["arn"]
    )
    assert (
        run.outputs["migrateTaskDefinitionArn"]
        == run.one("aws:ecs/taskDefinition:TaskDefinition", "migrate-").state["arn"]
    )
    assert run.outputs["webContainerName"] == "web"


@pytest.mark.parametrize("run_name", ["dev_run", "prod_run"])
def test_operations_tooling_accepts_the_exports(run_name: str, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    stack = DeployedStack.from_outputs(run.stack, "us-east-1", run.outputs)
    assert stack.one_off_log_group == run.outputs["logGroupNames"]["migrate"]
    assert stack.one_off_task_definition_arn == run.outputs["migrateTaskDefinitionArn"]
    assert stack.assign_public_ip is run.outputs["assignPublicIp"]


def test_ephemeral_stack_has_no_deletion_blocker(ephemeral_run: ProgramRun) -> None:
    blockers = {"deletionProtection", "enableDeletionProtection", "deletionProtectionEnabled", "skipDestroy"}
    blocked = [
        f"{resource.type} {resource.name}: {key}"
        for resource in ephemeral_run.resources
        for key in blockers
        if resource.inputs.get(key)
    ]
    assert blocked == []
    kept = [
        resource.name
        for resource in ephemeral_run.resources
        if resource.options.get("protect") or resource.options.get("retainOnDelete")
    ]
    assert kept == [], "protected or retained resources outlive `pulumi destroy`"
    assert ephemeral_run.one("aws:rds/instance:Instance").inputs["skipFinalSnapshot"] is True
    assert ephemeral_run.one("aws:ecr/repository:Repository").inputs["forceDelete"] is True
    assert {
        secret.inputs["recoveryWindowInDays"]
        for secret in ephemeral_run.of_type("aws:secretsmanager/secret:Secret")
    } == {0}


def test_every_aws_resource_is_tagged_with_project_and_stack_through_the_provider(
    dev_run: ProgramRun,
) -> None:
    provider = dev_run.one("pulumi:providers:aws")
    assert json.loads(provider.inputs["defaultTags"]) == {
        "tags": {"project": "djcelery", "stack": "dev", "managed-by": "pulumi"}
    }
    assert provider.inputs["region"] == "us-east-1"
    aws_resources = [resource for resource in dev_run.resources if resource.type.startswith("aws:")]
    untagged = [
        resource.name
        for resource in aws_resources
        if not resource.options["provider"].startswith(provider.urn + "::")
    ]
    assert aws_resources and untagged == [], f"not created through the tagging provider: {untagged}"


@pytest.mark.parametrize("run_name", STACKS)
def test_every_resource_belongs_to_a_component(run_name: str, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    components = {resource.urn for resource in run.resources if resource.type.startswith("djcelery:")}
    top_level = sorted(resource.name for resource in run.resources if resource.parent is None)
    outside = [
        resource.name
        for resource in run.resources
        if resource.parent is None and not resource.type.startswith(("djcelery:", "pulumi:providers:"))
    ]
    assert outside == [], f"declared outside any component: {outside}"
    assert {
        "network",
        "database",
        "broker",
        "secrets",
        "image",
        "cluster",
        "web-lb",
        "observability",
        "migrate",
        "release",
        "web",
        "scheduler",
        *(f"worker-{pool.name}" for pool in validate(run.config).workers.pools),
    } <= set(top_level)
    assert all(resource.parent in components for resource in run.resources if resource.parent)


@pytest.mark.parametrize("stack", ["Feature_X", "a" * 40])
def test_a_stack_name_aws_cannot_use_is_refused_before_any_resource(stack: str) -> None:
    with pytest.raises(ProgramFailed) as failure:
        run_program(stack, {"ephemeral": True})
    assert "cannot name AWS resources" in str(failure.value.error)
    assert failure.value.resources == []
