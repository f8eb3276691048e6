"""The preview's two dynamic providers against AWS's own API models: the capacity check against
moto's Elastic Load Balancing, the tenant's create and drop with ECS answers scripted by botocore's
Stubber (moto's ECS runs no containers; the Stubber checks every request against the ECS model)
and CloudWatch Logs from moto."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from infra import app_contract
from infra.dynamic_providers import AwsClients
from infra.preview.capacity import PreviewCapacityProvider, PreviewRefusedError
from infra.preview.tenant import PreviewTenantProvider, TenantError
from infra.release.runner import STARTED_BY
from testkit.moto_network import vpc_with_two_subnets

REGION = "eu-west-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield


# --- Capacity ---------------------------------------------------------------------------------


def listener_with_previews(count: int) -> str:
    """A load balancer whose listener answers 404 by default and holds `count` preview rules."""
    ec2, elbv2 = boto3.client("ec2", region_name=REGION), boto3.client("elbv2", region_name=REGION)
    vpc, subnets = vpc_with_two_subnets(ec2, REGION)
    balancer = elbv2.create_load_balancer(Name="preview-base", Subnets=subnets)["LoadBalancers"][0]
    not_found = {"StatusCode": "404", "ContentType": "text/plain", "MessageBody": "No preview"}
    listener = elbv2.create_listener(
        LoadBalancerArn=balancer["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": not_found}],
    )["Listeners"][0]["ListenerArn"]
    for number in range(1, count + 1):
        group = elbv2.create_target_group(
            Name=f"pr-{number}", Protocol="HTTP", Port=8000, VpcId=vpc, TargetType="ip"
        )["TargetGroups"][0]["TargetGroupArn"]
        elbv2.create_rule(
            ListenerArn=listener,
            Priority=100 + number,
            Conditions=[
                {"Field": "host-header", "HostHeaderConfig": {"Values": [f"pr-{number}.example.com"]}}
            ],
            Actions=[{"Type": "forward", "TargetGroupArn": group}],
        )
    return str(listener)


def capacity_props(listener: str, capacity: int, connection_limit: int = 15) -> dict[str, Any]:
    return {
        "listener_arn": listener,
        "capacity": capacity,
        "base_connection_limit": 15,
        "connection_limit": connection_limit,
        "region": REGION,
    }


def test_a_base_with_room_takes_the_preview(aws: None) -> None:
    """DescribeRules lists the listener's default rule too (`IsDefault`, botocore elbv2 shape
    Rule); the ALB's rules quota does not count it (ELB quotas: "Rules per Application Load
    Balancer (excluding default rules)": 100)."""
    listener = listener_with_previews(3)
    created = PreviewCapacityProvider().create(capacity_props(listener, capacity=4))
    assert created.id


def test_a_full_base_refuses_the_preview_naming_previewcapacity(aws: None) -> None:
    listener = listener_with_previews(3)
    with pytest.raises(PreviewRefusedError, match=r"holds 3 preview rules and its previewCapacity is 3"):
        PreviewCapacityProvider().create(capacity_props(listener, capacity=3))


def test_a_preview_asking_more_connections_than_the_base_holds_is_refused(aws: None) -> None:
    listener = listener_with_previews(0)
    with pytest.raises(PreviewRefusedError, match="previewConnectionLimit 30 is above the base's 15"):
        PreviewCapacityProvider().create(capacity_props(listener, capacity=90, connection_limit=30))


def test_an_existing_preview_is_never_refused_again() -> None:
    """The check runs on create only: an update stores the current provider and checks nothing."""
    provider = PreviewCapacityProvider(clients=lambda region: pytest.fail(f"no client ({region})"))
    props = capacity_props("arn:listener", capacity=1)
    assert provider.update("id", props, dict(props)).outs == props


# --- Tenant -----------------------------------------------------------------------------------

CLUSTER = f"arn:aws:ecs:{REGION}:123456789012:cluster/djcelery-preview-base"
TASK_DEFINITION = f"arn:aws:ecs:{REGION}:123456789012:task-definition/djcelery-preview-base-tenant:3"
TASK_ARN = f"arn:aws:ecs:{REGION}:123456789012:task/djcelery-preview-base/0123456789abcdef0123456789abcdef"
LOG_GROUP = "/ecs/djcelery-preview-base/tenant"
SECRET = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:djcelery-pr-42-database-url-a1B2c3"
TENANT_PROPS = {
    "tenant": "pr_42",
    "connection_limit": 15,
    "database_url_secret": SECRET,
    "key_prefix": "pr-42:",
    "cluster": CLUSTER,
    "task_definition_arn": TASK_DEFINITION,
    "container_name": "migrate",
    "subnet_ids": ["subnet-a", "subnet-b"],
    "security_group_ids": ["sg-app"],
    "assign_public_ip": True,
    "log_group_name": LOG_GROUP,
    "region": REGION,
    "timeout_seconds": 600,
    "task_arn": None,
}


class ScriptedTenantTask:
    def __init__(self) -> None:
        self.client = boto3.client("ecs", region_name=REGION)
        self.stubber = Stubber(self.client)

    def runs(self, command: list[str], exit_code: int) -> None:
        self.stubber.add_response(
            "run_task",
            {"tasks": [{"taskArn": TASK_ARN, "lastStatus": "PROVISIONING"}], "failures": []},
            {
                "cluster": CLUSTER,
                "taskDefinition": TASK_DEFINITION,
                "launchType": "FARGATE",
                "count": 1,
                "startedBy": STARTED_BY,
                "networkConfiguration": {
                    "awsvpcConfiguration": {
                        "subnets": ["subnet-a", "subnet-b"],
                        "securityGroups": ["sg-app"],
                        "assignPublicIp": "ENABLED",
                    }
                },
                # botocore ecs ContainerOverride: name, command, environment (KeyValuePair list).
                "overrides": {
                    "containerOverrides": [
                        {
                            "name": "migrate",
                            "command": command,
                            "environment": [{"name": "REDIS_KEY_PREFIX", "value": "pr-42:"}],
                        }
                    ]
                },
            },
        )
        self.stubber.add_response(
            "describe_tasks",
            {
                "tasks": [
                    {
                        "taskArn": TASK_ARN,
                        "lastStatus": "STOPPED",
                        "stopCode": "EssentialContainerExited",
                        "containers": [{"name": "migrate", "lastStatus": "STOPPED", "exitCode": exit_code}],
                    }
                ],
                "failures": [],
            },
            {"cluster": CLUSTER, "tasks": [TASK_ARN]},
        )


@pytest.fixture
def tenant_task(aws: None) -> Iterator[ScriptedTenantTask]:
    scripted = ScriptedTenantTask()
    with scripted.stubber:
        yield scripted
        scripted.stubber.assert_no_pending_responses()


def provider(tenant_task: ScriptedTenantTask) -> PreviewTenantProvider:
    logs = boto3.client("logs", region_name=REGION)
    return PreviewTenantProvider(
        clients=lambda region: AwsClients(ecs=tenant_task.client, logs=logs), sleep=time.sleep
    )


def test_create_runs_the_tenant_command_with_the_connection_limit(tenant_task: ScriptedTenantTask) -> None:
    """The role's `CONNECTION LIMIT connlimit`: how many concurrent connections it can make, -1 for
    no limit (PostgreSQL, CREATE ROLE: https://www.postgresql.org/docs/current/sql-createrole.html);
    ECS RunTask takes the command and the preview's REDIS_KEY_PREFIX as a container override of the
    base's task definition (botocore ecs shape ContainerOverride; the Stubber validates the request)."""
    tenant_task.runs(app_contract.preview_tenant_command("create", 15, SECRET), exit_code=0)
    created = provider(tenant_task).create(dict(TENANT_PROPS))
    assert (created.outs or {})["task_arn"] == TASK_ARN


def test_delete_drops_the_tenant_from_what_the_state_kept(tenant_task: ScriptedTenantTask) -> None:
    """`pulumi destroy` calls delete with the resource's stored outputs, without the program."""
    tenant_task.runs(app_contract.preview_tenant_command("create", 15, SECRET), exit_code=0)
    tenant_task.runs(app_contract.preview_tenant_command("drop", None, SECRET), exit_code=0)
    tenants = provider(tenant_task)
    stored = tenants.create(dict(TENANT_PROPS)).outs or {}
    tenants.delete("id", stored)


def test_a_failed_drop_fails_the_destroy_with_what_the_task_printed(tenant_task: ScriptedTenantTask) -> None:
    logs = boto3.client("logs", region_name=REGION)
    logs.create_log_group(logGroupName=LOG_GROUP)
    stream = f"migrate/migrate/{TASK_ARN.rsplit('/', 1)[-1]}"
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
    logs.put_log_events(
        logGroupName=LOG_GROUP,
        logStreamName=stream,
        logEvents=[{"timestamp": int(time.time() * 1000), "message": "database pr_42 is being accessed"}],
    )
    tenant_task.runs(app_contract.preview_tenant_command("drop", None, SECRET), exit_code=1)
    with pytest.raises(TenantError, match=r"(?s)exited with code 1.*database pr_42 is being accessed"):
        provider(tenant_task).delete("id", dict(TENANT_PROPS, task_arn=TASK_ARN))
