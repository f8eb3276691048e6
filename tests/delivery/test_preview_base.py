"""The janitor's reconcile of the preview base: listener rules and target groups of previews whose pull
request is closed, found by their stack tags and removed rules first (against moto's ELBv2)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from testkit.moto_network import vpc_with_two_subnets
from testkit.workflow_scripts import workflow_script

preview_base = workflow_script("preview_base")

REGION = "us-east-1"
PROJECT = "djcelery"
BASE = "preview-base"
OPEN = {3}
# More closed previews than one DescribeTags call takes (20 ARNs, botocore DescribeTagsInput).
CLOSED = list(range(10, 32))


def tags(stack: str) -> list[dict[str, str]]:
    """The default tags every resource of a stack carries (infra/naming.py StackNames.tags)."""
    return [
        {"Key": "project", "Value": PROJECT},
        {"Key": "stack", "Value": stack},
        {"Key": "managed-by", "Value": "pulumi"},
    ]


def network(ec2: Any) -> tuple[str, list[str]]:
    return vpc_with_two_subnets(ec2, REGION)


@pytest.fixture
def elbv2(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.client("elbv2", region_name=REGION)


def base_with_previews(elbv2: Any) -> dict[str, Any]:
    """A base (ALB tagged with its stack, an HTTPS listener answering 404) holding preview 3 (open) and the
    closed previews; plus a full-copy stack of a closed pull request in a network of its own."""
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc, subnets = network(ec2)
    balancer = elbv2.create_load_balancer(Name="djcelery-preview-base", Subnets=subnets, Tags=tags(BASE))
    certificate = boto3.client("acm", region_name=REGION).request_certificate(
        DomainName="*.preview.example.com"
    )
    listener = elbv2.create_listener(
        LoadBalancerArn=balancer["LoadBalancers"][0]["LoadBalancerArn"],
        Protocol="HTTPS",
        Port=443,
        Certificates=[{"CertificateArn": certificate["CertificateArn"]}],
        DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}],
    )["Listeners"][0]["ListenerArn"]
    routes = {}
    for number in [*OPEN, *CLOSED]:
        group = elbv2.create_target_group(
            Name=f"djcelery-pr-{number}-web",
            Protocol="HTTP",
            Port=8000,
            VpcId=vpc,
            TargetType="ip",
            Tags=tags(f"pr-{number}"),
        )["TargetGroups"][0]["TargetGroupArn"]
        rule = elbv2.create_rule(
            ListenerArn=listener,
            Priority=100 + number,
            Conditions=[
                {"Field": "host-header", "HostHeaderConfig": {"Values": [f"pr-{number}.preview.example.com"]}}
            ],
            Actions=[{"Type": "forward", "TargetGroupArn": group}],
            Tags=tags(f"pr-{number}"),
        )["Rules"][0]["RuleArn"]
        routes[number] = (rule, group)
    other_vpc, _ = network(ec2)
    full_copy = elbv2.create_target_group(
        Name="djcelery-pr-10-full",
        Protocol="HTTP",
        Port=8000,
        VpcId=other_vpc,
        TargetType="ip",
        Tags=tags("pr-10"),
    )["TargetGroups"][0]["TargetGroupArn"]
    return {"listener": listener, "routes": routes, "full_copy": full_copy}


def test_rules_and_target_groups_of_closed_pull_requests_are_orphans(elbv2) -> None:
    made = base_with_previews(elbv2)

    orphans = preview_base.orphan_routes(elbv2, PROJECT, BASE, OPEN)

    assert [orphan.stack for orphan in orphans.rules] == [f"pr-{number}" for number in CLOSED]
    assert {orphan.arn for orphan in orphans.target_groups} == {made["routes"][n][1] for n in CLOSED}
    assert made["full_copy"] not in {orphan.arn for orphan in orphans.target_groups}, "another network"


def test_remove_deletes_rules_then_target_groups_and_keeps_the_open_preview(elbv2) -> None:
    made = base_with_previews(elbv2)

    preview_base.remove(elbv2, preview_base.orphan_routes(elbv2, PROJECT, BASE, OPEN))

    rules = [
        rule["RuleArn"]
        for rule in elbv2.describe_rules(ListenerArn=made["listener"])["Rules"]
        if not rule["IsDefault"]
    ]
    groups = {group["TargetGroupArn"] for group in elbv2.describe_target_groups()["TargetGroups"]}
    assert rules == [made["routes"][3][0]]
    assert groups == {made["routes"][3][1], made["full_copy"]}
    assert preview_base.orphan_routes(elbv2, PROJECT, BASE, OPEN).count() == 0


def test_a_missing_base_is_a_clear_error(elbv2) -> None:
    with pytest.raises(LookupError, match="0 load balancers tagged project=djcelery stack=preview-base"):
        preview_base.orphan_routes(elbv2, PROJECT, BASE, OPEN)


# --- Tenants: `preview_tenant orphans` in the base's tenant task --------------------------------

TASK_REGION = "eu-west-1"
CLUSTER = f"arn:aws:ecs:{TASK_REGION}:123456789012:cluster/djcelery-preview-base"
TENANT_TASK_DEFINITION = (
    f"arn:aws:ecs:{TASK_REGION}:123456789012:task-definition/djcelery-preview-base-tenant:3"
)
TASK_ARN = (
    f"arn:aws:ecs:{TASK_REGION}:123456789012:task/djcelery-preview-base/0123456789abcdef0123456789abcdef"
)
LOG_GROUP = "/ecs/djcelery-preview-base/tenant"
# The base's outputs as `pulumi stack output --json` prints them (infra/preview/base.py).
BASE_OUTPUTS = {
    "clusterArn": CLUSTER,
    "tenantTaskDefinitionArn": TENANT_TASK_DEFINITION,
    "tenantContainerName": "migrate",
    "tenantLogGroupName": LOG_GROUP,
    "serviceSubnetIds": ["subnet-a", "subnet-b"],
    "appSecurityGroupId": "sg-app",
    "assignPublicIp": True,
}


@pytest.fixture
def tenant_task(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any, Stubber]]:
    """ECS scripted by botocore's Stubber (moto's ECS runs no containers; the Stubber checks every
    request against the ECS model), CloudWatch Logs from moto."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        ecs, logs = (
            boto3.client("ecs", region_name=TASK_REGION),
            boto3.client("logs", region_name=TASK_REGION),
        )
        with Stubber(ecs) as stubber:
            yield ecs, logs, stubber
            stubber.assert_no_pending_responses()


def script_orphans_task(stubber: Stubber, command: list[str], exit_code: int) -> None:
    """RunTask of the base's tenant task definition with the orphans command as the container's
    override (botocore ecs RunTaskRequest, ContainerOverride), then DescribeTasks: running, stopped."""
    stubber.add_response(
        "run_task",
        {"tasks": [{"taskArn": TASK_ARN, "lastStatus": "PROVISIONING"}], "failures": []},
        {
            "cluster": CLUSTER,
            "taskDefinition": TENANT_TASK_DEFINITION,
            "launchType": "FARGATE",
            "count": 1,
            "startedBy": preview_base.STARTED_BY,
            "networkConfiguration": {
                "awsvpcConfiguration": {
                    "subnets": ["subnet-a", "subnet-b"],
                    "securityGroups": ["sg-app"],
                    "assignPublicIp": "ENABLED",
                }
            },
            "overrides": {"containerOverrides": [{"name": "migrate", "command": command}]},
        },
    )
    for status, code in (("RUNNING", None), ("STOPPED", exit_code)):
        container = {
            "name": "migrate",
            "lastStatus": status,
            **({"exitCode": code} if code is not None else {}),
        }
        stubber.add_response(
            "describe_tasks",
            {
                "tasks": [{"taskArn": TASK_ARN, "lastStatus": status, "containers": [container]}],
                "failures": [],
            },
            {"cluster": CLUSTER, "tasks": [TASK_ARN]},
        )


def test_tenants_runs_orphans_in_the_base_tenant_task_and_exits_with_its_code(tenant_task, capsys) -> None:
    ecs, logs, stubber = tenant_task
    logs.create_log_group(logGroupName=LOG_GROUP)
    stream = f"migrate/migrate/{TASK_ARN.rsplit('/', 1)[-1]}"  # awslogs: <prefix>/<container>/<task id>
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
    logs.put_log_events(
        logGroupName=LOG_GROUP,
        logStreamName=stream,
        logEvents=[
            {"timestamp": int(time.time() * 1000), "message": "removing pr-12: database pr_12, role pr_12"}
        ],
    )
    command = ["python", "manage.py", "preview_tenant", "orphans", "--keep", "pr-3", "--remove"]
    script_orphans_task(stubber, command, exit_code=0)
    task = preview_base.TenantTask.from_outputs(BASE_OUTPUTS)

    code = preview_base.orphan_tenants(ecs, logs, task, "pr-3", remove=True, sleep=lambda _: None)

    assert code == 0
    assert "removing pr-12: database pr_12, role pr_12" in capsys.readouterr().err


def test_tenants_lists_only_unless_asked_and_passes_a_failure_on(tenant_task) -> None:
    ecs, logs, stubber = tenant_task
    script_orphans_task(
        stubber, ["python", "manage.py", "preview_tenant", "orphans", "--keep", ""], exit_code=1
    )
    task = preview_base.TenantTask.from_outputs(BASE_OUTPUTS)

    assert preview_base.orphan_tenants(ecs, logs, task, "", remove=False, sleep=lambda _: None) == 1


def test_a_base_without_the_tenant_task_outputs_is_a_clear_error() -> None:
    outputs = {key: value for key, value in BASE_OUTPUTS.items() if not key.startswith("tenant")}
    with pytest.raises(LookupError, match="tenantTaskDefinitionArn, tenantContainerName, tenantLogGroupName"):
        preview_base.TenantTask.from_outputs(outputs)
