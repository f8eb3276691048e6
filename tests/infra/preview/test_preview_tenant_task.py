"""The base's one-off `tenant` task and how a preview runs it: what the task definition holds, what
its role may read, what the base exports of it, and where a preview's tenant sits in the order of a
fresh `pulumi up` (after its secret and the capacity check, beside its image, before migrations).
"""

from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

import botocore.session

from infra import app_contract
from infra.preview.tenant import preview_database_url_secrets
from testkit.engine.graph import DependencyGraph
from testkit.program import ProgramRun, RecordedResource

TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
ACCOUNT = "123456789012"


def tenant_container(base: ProgramRun) -> dict[str, Any]:
    [container] = json.loads(base.one(TASK_DEFINITION, "tenant").inputs["containerDefinitions"])
    return dict(container)


def preview_tenant(preview: ProgramRun) -> RecordedResource:
    [tenant] = [r for r in preview.of_type("pulumi-python:dynamic:Resource") if r.name == "tenant"]
    return tenant


def test_the_base_declares_the_tenant_task_like_the_migrate_task(preview_base_run: ProgramRun) -> None:
    """ECS container definition (ECS developer guide, "Task definition parameters"):
    `readonlyRootFilesystem`, `user` (uid:gid), the awslogs log driver with `awslogs-group`; secrets
    `valueFrom` a Secrets Manager ARN ("Pass Secrets Manager secrets through environment variables")."""
    base = preview_base_run
    container = tenant_container(base)
    secrets = {secret["name"]: secret["valueFrom"] for secret in container["secrets"]}
    assert container["readonlyRootFilesystem"] is True
    assert container["user"] == app_contract.APP_USER
    assert container["logConfiguration"]["logDriver"] == "awslogs"
    assert secrets[app_contract.ADMIN_DATABASE_URL] == base.outputs["adminDatabaseUrlSecretArn"]
    assert secrets[app_contract.REDIS_URL] == base.outputs["brokerUrlSecretArn"]
    environment = {item["name"]: item["value"] for item in container["environment"]}
    assert environment[app_contract.REDIS_KEY_PREFIX] == ""  # a preview's run overrides it
    assert container["image"] == base.outputs["imageRef"]
    assert container["image"].startswith(base.outputs["ecrRepositoryUrl"] + "@sha256:")


def test_the_base_exports_its_tenant_task(preview_base_run: ProgramRun) -> None:
    base = preview_base_run
    container = tenant_container(base)
    assert base.outputs["tenantTaskDefinitionArn"] == base.one(TASK_DEFINITION, "tenant").state["arn"]
    assert base.outputs["tenantContainerName"] == container["name"]
    assert base.outputs["tenantLogGroupName"] == container["logConfiguration"]["options"]["awslogs-group"]


def iam_matches(pattern: str, arn: str) -> bool:
    """IAM resource wildcards: `*` any run of characters, `?` exactly one (IAM user guide, "IAM JSON
    policy elements: Resource", wildcards in ARNs)."""
    return fnmatch.fnmatchcase(arn, pattern)


def test_the_tenant_task_role_reads_previews_database_urls_only(preview_base_run: ProgramRun) -> None:
    """Secrets Manager ARNs are arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 random
    characters>, and a policy names a secret by `<name>-??????` (Secrets Manager user guide,
    https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_iam-permissions.html,
    "Secret ARNs"); GetSecretValue is the action that reads a value (Secrets Manager API reference)."""
    [policy] = [
        r
        for r in preview_base_run.of_type("aws:iam/rolePolicy:RolePolicy")
        if r.name.startswith("tenant-task-")
    ]
    [statement] = json.loads(policy.inputs["policy"])["Statement"]
    assert (statement["Effect"], statement["Action"]) == ("Allow", "secretsmanager:GetSecretValue")
    pattern = statement["Resource"]
    shape = re.fullmatch(
        r"arn:aws:secretsmanager:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):secret:(?P<name>.+)", pattern
    )
    assert shape is not None, pattern
    assert shape["name"] == "djcelery-pr-*-database-url-??????"
    assert pattern == preview_database_url_secrets("djcelery", shape["region"], shape["account"])
    secret = f"arn:aws:secretsmanager:{shape['region']}:{shape['account']}:secret:"
    assert iam_matches(pattern, f"{secret}djcelery-pr-42-database-url-a1B2c3")
    for other in (
        f"{secret}djcelery-pr-42-redis-url-a1B2c3",  # the broker's URL
        f"{secret}djcelery-pr-42-django-secret-key-a1B2c3",
        f"{secret}admin-database-url-a1B2c3",  # the base's own
        f"{secret}djcelery-prod-database-url-a1B2c3",
        f"{secret}djcelery-pr-42-database-url-a1B2c3-more",
        f"arn:aws:secretsmanager:{shape['region']}:{ACCOUNT[::-1]}:secret:djcelery-pr-42-database-url-a1B2c3",
    ):
        assert not iam_matches(pattern, other), other


def test_only_the_base_tenant_execution_role_reads_the_admin_url(
    preview_base_run: ProgramRun, preview_run: ProgramRun
) -> None:
    """ECS reads a task's secrets with its execution role, which needs secretsmanager:GetSecretValue
    on each (ECS developer guide, "Required IAM permissions for Amazon ECS secrets")."""
    admin = preview_base_run.outputs["adminDatabaseUrlSecretArn"]
    for run, expected in ((preview_base_run, {"tenant-execution"}), (preview_run, set())):
        readers = {
            policy.name
            for policy in run.of_type("aws:iam/rolePolicy:RolePolicy")
            if policy.name.endswith("-execution") and admin in policy.inputs["policy"]
        }
        assert readers == expected


def test_a_preview_runs_the_base_tenant_task_as_itself(
    preview_base_run: ProgramRun, preview_run: ProgramRun
) -> None:
    """RunTask's overrides.containerOverrides[] takes the container's `name`, a `command` and
    `environment` name/value pairs (botocore ecs shapes ContainerOverride, KeyValuePair); the
    preview's DATABASE_URL secret is the one its own tasks read."""
    base, tenant = preview_base_run, preview_tenant(preview_run)
    ecs = botocore.session.get_session().get_service_model("ecs")
    assert {"name", "command", "environment"} <= set(ecs.shape_for("ContainerOverride").members)
    inputs = tenant.inputs
    assert inputs["task_definition_arn"] == base.outputs["tenantTaskDefinitionArn"]
    assert inputs["container_name"] == base.outputs["tenantContainerName"]
    assert inputs["log_group_name"] == base.outputs["tenantLogGroupName"]
    assert inputs["cluster"] == base.outputs["clusterArn"]
    assert inputs["subnet_ids"] == base.outputs["serviceSubnetIds"]
    assert inputs["key_prefix"] == "pr-42:"
    assert re.fullmatch(app_contract.REDIS_KEY_PREFIX_PATTERN, inputs["key_prefix"])
    database_url = preview_run.one("aws:secretsmanager/secret:Secret", "secrets-database-url")
    assert inputs["database_url_secret"] == database_url.state["arn"]
    assert database_url.inputs["name"] == "djcelery-pr-42-database-url"
    assert (inputs["tenant"], inputs["connection_limit"]) == ("pr_42", 15)
    # The preview declares no tenant task of its own.
    assert all("tenant" not in definition.name for definition in preview_run.of_type(TASK_DEFINITION))


def test_the_tenant_waits_for_its_secret_and_capacity_not_the_image(preview_run: ProgramRun) -> None:
    """The engine creates a resource once everything it depends on exists (depends_on and inputs;
    a component stands for its children: Pulumi docs, "Resource options: dependsOn"), so the tenant
    task runs while the preview's image builds; the release waits for both."""
    graph = DependencyGraph(preview_run)
    tenant = preview_tenant(preview_run)
    waits = graph.waits_for(tenant)
    version = preview_run.one("aws:secretsmanager/secretVersion:SecretVersion", "secrets-database-url")
    [capacity] = [r for r in preview_run.of_type("pulumi-python:dynamic:Resource") if r.name == "capacity"]
    assert {version.urn, capacity.urn} <= waits
    image_parts = [
        r.urn for r in preview_run.resources if r.type.startswith("docker:") or r.name.startswith("image")
    ]
    assert image_parts and not set(image_parts) & waits
    [release] = [
        r for r in preview_run.of_type("pulumi-python:dynamic:Resource") if "consumed_queues" in r.inputs
    ]
    assert tenant.urn in graph.waits_for(release)
    assert set(image_parts) & graph.waits_for(release)
