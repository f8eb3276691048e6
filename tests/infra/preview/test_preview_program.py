"""The two preview kinds as the program declares them: what the base creates and what it must not,
what a thin preview on it creates and what it must not, each value against AWS's documentation.

The preview reads the base's own recorded outputs through its StackReference, so its rule sits on
the base's HTTPS listener, its tasks on the base's cluster and subnets, and its secrets point at the
base's database server and broker.
"""

from __future__ import annotations

import json
import re
from typing import Any

import botocore.session

from infra import app_contract
from infra.preview.priority import rule_priority
from testkit.program import ProgramRun, RecordedResource

# What only a full copy or the base owns: a preview never creates one.
SHARED_TYPES = {
    "aws:ec2/vpc:Vpc",
    "aws:ec2/subnet:Subnet",
    "aws:ec2/natGateway:NatGateway",
    "aws:rds/instance:Instance",
    "aws:elasticache/replicationGroup:ReplicationGroup",
    "aws:lb/loadBalancer:LoadBalancer",
    "aws:lb/listener:Listener",
    "aws:acm/certificate:Certificate",
    "aws:ecs/cluster:Cluster",
    "aws:ecr/repository:Repository",
    "aws:sns/topic:Topic",
    "aws:wafv2/webAcl:WebAcl",
    "aws:cloudwatch/dashboard:Dashboard",
}
CONTAINER_TYPES = ("aws:ecs/taskDefinition:TaskDefinition", "aws:ecs/service:Service")


def types(run: ProgramRun) -> set[str]:
    return {resource.type for resource in run.resources}


def containers(run: ProgramRun) -> dict[str, list[dict[str, Any]]]:
    return {
        definition.name: json.loads(definition.inputs["containerDefinitions"])
        for definition in run.of_type("aws:ecs/taskDefinition:TaskDefinition")
    }


def test_the_base_owns_what_previews_share_and_runs_no_service(preview_base_run: ProgramRun) -> None:
    for shared in (
        "aws:ec2/vpc:Vpc",
        "aws:rds/instance:Instance",
        "aws:elasticache/replicationGroup:ReplicationGroup",
        "aws:lb/loadBalancer:LoadBalancer",
        "aws:ecs/cluster:Cluster",
        "aws:ecr/repository:Repository",
        "aws:sns/topic:Topic",
    ):
        assert len(preview_base_run.of_type(shared)) == 1, shared
    # Its one task definition is the one-off tenant task (test_preview_tenant_task.py).
    assert [d.name for d in preview_base_run.of_type(CONTAINER_TYPES[0])] == ["tenant-task-definition"]
    assert not types(preview_base_run) & {
        CONTAINER_TYPES[1],
        "aws:lb/targetGroup:TargetGroup",
        "aws:lb/listenerRule:ListenerRule",
    }
    assert not types(preview_base_run) & {"aws:wafv2/webAcl:WebAcl", "aws:cloudwatch/dashboard:Dashboard"}


def test_the_base_answers_404_to_every_host_no_preview_claims(preview_base_run: ProgramRun) -> None:
    """A fixed-response action's status code matches `^(2|4|5)\\d\\d$` (botocore elbv2 shape
    FixedResponseActionConfig.StatusCode); HTTP only redirects to HTTPS."""
    pattern = (
        botocore.session.get_session()
        .get_service_model("elbv2")
        .shape_for("FixedResponseActionConfig")
        .members["StatusCode"]
        .metadata["pattern"]
    )
    https = preview_base_run.one("aws:lb/listener:Listener", "https")
    [action] = https.inputs["defaultActions"]
    assert action["type"] == "fixed-response"
    assert re.fullmatch(pattern, action["fixedResponse"]["statusCode"])
    assert action["fixedResponse"]["statusCode"] == "404"
    [http] = [r for r in preview_base_run.of_type("aws:lb/listener:Listener") if r.inputs["port"] == 80]
    [redirect] = http.inputs["defaultActions"]
    assert redirect["redirect"]["protocol"] == "HTTPS"


def test_the_base_has_a_wildcard_certificate_and_dns_for_every_preview(preview_base_run: ProgramRun) -> None:
    """A wildcard name protects every name one label below it (ACM user guide, "Wildcard names":
    https://docs.aws.amazon.com/acm/latest/userguide/acm-certificate-characteristics.html), so
    pr-N.preview.example.com is covered; Route 53 answers `*.<domain>` for every such name."""
    certificate = preview_base_run.one("aws:acm/certificate:Certificate")
    assert certificate.inputs["domainName"] == "*.preview.example.com"
    assert certificate.inputs["validationMethod"] == "DNS"
    aliases = [r for r in preview_base_run.of_type("aws:route53/record:Record") if r.inputs.get("aliases")]
    assert {(r.inputs["name"], r.inputs["type"]) for r in aliases} == {
        ("*.preview.example.com", "A"),
        ("*.preview.example.com", "AAAA"),
    }


def test_the_base_exports_what_a_preview_reads(preview_base_run: ProgramRun) -> None:
    assert preview_base_run.outputs["previewCapacity"] == 90
    assert (
        preview_base_run.outputs["previewListenerArn"]
        == preview_base_run.one("aws:lb/listener:Listener", "https").state["arn"]
    )
    assert "brokerUrl" in preview_base_run.secret_outputs  # a credential: `pulumi stack output` hides it
    admin = preview_base_run.one("aws:secretsmanager/secretVersion:SecretVersion", "admin-database-url")
    # The master user's URL to the maintenance database, TLS required (contract: ADMIN_DATABASE_URL).
    assert re.fullmatch(
        r"postgres://app:\w+@[^/]+:5432/postgres\?sslmode=require", admin.inputs["secretString"]
    )


def test_a_preview_creates_nothing_its_base_shares(preview_run: ProgramRun) -> None:
    assert not types(preview_run) & SHARED_TYPES


def test_the_preview_routes_its_own_host_on_the_base_listener(
    preview_base_run: ProgramRun, preview_run: ProgramRun
) -> None:
    """Host conditions: a host name of up to 128 characters (Application Load Balancer guide,
    https://docs.aws.amazon.com/elasticloadbalancing/latest/application/rule-condition-types.html);
    CreateRule's Priority is a `RulePriority` (botocore elbv2: 1 to 50000)."""
    rule = preview_run.one("aws:lb/listenerRule:ListenerRule")
    assert rule.inputs["listenerArn"] == preview_base_run.outputs["previewListenerArn"]
    assert rule.inputs["priority"] == rule_priority(42)
    [condition] = rule.inputs["conditions"]
    [host] = condition["hostHeader"]["values"]
    assert host == "pr-42.preview.example.com" and len(host) <= 128
    target_group = preview_run.one("aws:lb/targetGroup:TargetGroup")
    assert target_group.inputs["vpcId"] == preview_base_run.outputs["vpcId"]
    assert rule.inputs["actions"][0]["targetGroupArn"] == target_group.state["arn"]
    assert preview_run.outputs["webUrl"] == "https://pr-42.preview.example.com"


def test_the_capacity_check_runs_before_anything_touches_the_base(preview_run: ProgramRun) -> None:
    [capacity] = [r for r in dynamic(preview_run) if "listener_arn" in r.inputs]
    [tenant] = [r for r in dynamic(preview_run) if r.name == "tenant"]
    assert capacity.urn in tenant.dependencies
    for routed in ("aws:lb/listenerRule:ListenerRule", "aws:lb/targetGroup:TargetGroup"):
        assert capacity.urn in preview_run.one(routed).dependencies


def dynamic(run: ProgramRun) -> list[RecordedResource]:
    return run.of_type("pulumi-python:dynamic:Resource")


def test_no_preview_task_reads_the_admin_url(preview_run: ProgramRun) -> None:
    """The base's tenant task alone holds ADMIN_DATABASE_URL (test_preview_tenant_task.py)."""
    for family, definitions in containers(preview_run).items():
        secrets = {secret["name"] for d in definitions for secret in d.get("secrets", [])}
        assert app_contract.ADMIN_DATABASE_URL not in secrets, family


def test_every_preview_container_prefixes_its_redis_keys(preview_run: ProgramRun) -> None:
    for family, definitions in containers(preview_run).items():
        for definition in definitions:
            environment = {item["name"]: item["value"] for item in definition["environment"]}
            prefix = environment[app_contract.REDIS_KEY_PREFIX]
            assert prefix == "pr-42:" and re.fullmatch(app_contract.REDIS_KEY_PREFIX_PATTERN, prefix), family


def test_the_preview_database_url_names_its_own_role_on_the_base_server(
    preview_base_run: ProgramRun, preview_run: ProgramRun
) -> None:
    url = preview_run.one("aws:secretsmanager/secretVersion:SecretVersion", "database-url").inputs[
        "secretString"
    ]
    assert re.fullmatch(
        rf"postgres://pr_42:\w+@{re.escape(preview_base_run.outputs['dbAddress'])}:5432/pr_42\?sslmode=require",
        url,
    )
    redis = preview_run.one("aws:secretsmanager/secretVersion:SecretVersion", "redis-url").inputs[
        "secretString"
    ]
    assert redis == preview_base_run.outputs["brokerUrl"]


def test_the_preview_service_runs_on_spot_on_the_base_cluster(
    preview_base_run: ProgramRun, preview_run: ProgramRun
) -> None:
    """FARGATE_SPOT is the capacity provider of Fargate Spot (ECS developer guide, "AWS Fargate
    capacity providers"). The preview's one service: test_preview_app_service.py."""
    [service] = preview_run.of_type("aws:ecs/service:Service")
    assert service.inputs["cluster"] == preview_base_run.outputs["clusterArn"]
    providers = {s["capacityProvider"] for s in service.inputs["capacityProviderStrategies"]}
    assert providers == {"FARGATE_SPOT"}
    assert service.inputs["desiredCount"] == 1


def test_a_full_stack_prefixes_nothing(dev_run: ProgramRun) -> None:
    for family, definitions in containers(dev_run).items():
        for definition in definitions:
            environment = {item["name"]: item["value"] for item in definition["environment"]}
            assert environment[app_contract.REDIS_KEY_PREFIX] == "", family


def test_a_preview_target_group_checks_health_fast_and_a_full_stack_keeps_its_pace(
    preview_run: ProgramRun, dev_run: ProgramRun
) -> None:
    """A preview has one task and no traffic to protect. CreateTargetGroup limits (botocore elbv2
    CreateTargetGroupInput): HealthCheckIntervalSeconds 5-300, HealthCheckTimeoutSeconds 2-120,
    HealthyThresholdCount and UnhealthyThresholdCount 2-10; the timeout must be shorter than the
    interval (Application Load Balancer guide, "Health checks for your target groups")."""
    limits = botocore.session.get_session().get_service_model("elbv2").shape_for("CreateTargetGroupInput")

    def within(member: str, value: int) -> bool:
        metadata = limits.members[member].metadata
        return bool(metadata["min"] <= value <= metadata["max"])

    check = preview_run.one("aws:lb/targetGroup:TargetGroup").inputs["healthCheck"]
    assert (check["interval"], check["timeout"], check["healthyThreshold"]) == (5, 4, 2)
    assert within("HealthCheckIntervalSeconds", check["interval"])
    assert within("HealthCheckTimeoutSeconds", check["timeout"])
    assert within("HealthyThresholdCount", check["healthyThreshold"])
    assert within("UnhealthyThresholdCount", check["unhealthyThreshold"])
    assert check["timeout"] < check["interval"]
    for group in dev_run.of_type("aws:lb/targetGroup:TargetGroup"):
        full = group.inputs["healthCheck"]
        assert (full["interval"], full["timeout"], full["healthyThreshold"]) == (15, 5, 2), group.name
