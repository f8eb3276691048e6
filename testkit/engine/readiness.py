"""The start-readiness rule: every ECS task launch waits for everything its containers need.

ECS starts a task the moment a resource asks for it: the release's RunTask, or CreateService and
UpdateService. At that moment the task needs, or ECS stops it with ResourceInitializationError:
- its task definition, the execution role's and the task role's policies (ECS pulls the image,
  reads the secrets and writes the logs as the execution role);
- the log group its containers write to, and every secret *version* it reads (a secret without a
  version has no AWSCURRENT value yet);
- the database and the broker its containers connect to;
- a route out of its subnets (route table, its association, the NAT or internet gateway) to pull
  the image, and its security group's egress rules;
- for a service: the cluster's capacity providers (its strategy names them), and the listener of
  the target group it registers in (ECS refuses a target group without a load balancer).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from testkit.engine.graph import DependencyGraph
from testkit.program import ProgramRun, RecordedResource

TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
ECS_SERVICE = "aws:ecs/service:Service"
DYNAMIC_RESOURCE = "pulumi-python:dynamic:Resource"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
SECRET = "aws:secretsmanager/secret:Secret"  # noqa: S105 - a type token
SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"  # noqa: S105 - a type token
DATA_STORES = ("aws:rds/instance:Instance", "aws:elasticache/replicationGroup:ReplicationGroup")
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
ROUTE_TABLE_ASSOCIATION = "aws:ec2/routeTableAssociation:RouteTableAssociation"
NAT_GATEWAY = "aws:ec2/natGateway:NatGateway"
INTERNET_GATEWAY = "aws:ec2/internetGateway:InternetGateway"
EGRESS_RULE = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
CLUSTER = "aws:ecs/cluster:Cluster"
CAPACITY_PROVIDERS = "aws:ecs/clusterCapacityProviders:ClusterCapacityProviders"
LISTENER = "aws:lb/listener:Listener"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"


@dataclass(frozen=True)
class Launch:
    """A resource whose create or update starts ECS tasks, and what it starts them with."""

    resource: RecordedResource
    task_definition_arn: str
    cluster: str
    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]
    target_groups: tuple[str, ...]
    uses_capacity_providers: bool

    @classmethod
    def of(cls, resource: RecordedResource) -> Launch | None:
        inputs = resource.inputs
        if resource.type == ECS_SERVICE:
            network = inputs.get("networkConfiguration") or {}
            return cls(
                resource,
                str(inputs.get("taskDefinition")),
                str(inputs.get("cluster")),
                tuple(network.get("subnets") or ()),
                tuple(network.get("securityGroups") or ()),
                tuple(target["targetGroupArn"] for target in inputs.get("loadBalancers") or ()),
                bool(inputs.get("capacityProviderStrategies")),
            )
        if resource.type == DYNAMIC_RESOURCE and {"task_definition_arn", "subnet_ids"} <= set(inputs):
            return cls(
                resource,
                str(inputs["task_definition_arn"]),
                str(inputs["cluster"]),
                tuple(inputs.get("subnet_ids") or ()),
                tuple(inputs.get("security_group_ids") or ()),
                (),
                False,  # one-off tasks run on FARGATE by launch type, not through the strategy
            )
        return None


def launches(run: ProgramRun) -> list[Launch]:
    return [launch for resource in run.resources if (launch := Launch.of(resource)) is not None]


def start_requirements(graph: DependencyGraph, launch: Launch) -> list[RecordedResource]:
    """Every resource that must exist before the launch's tasks can start."""
    [task_definition] = graph.with_identity(TASK_DEFINITION, [launch.task_definition_arn])
    required = [task_definition, *_task_needs(graph, task_definition)]
    for type_token in DATA_STORES:
        required += graph.run.of_type(type_token)
    required += _routes_out(graph, launch.subnets)
    required += [
        rule
        for rule in graph.run.of_type(EGRESS_RULE)
        if rule.inputs["securityGroupId"] in launch.security_groups
    ]
    if launch.uses_capacity_providers:
        clusters = graph.with_identity(CLUSTER, [launch.cluster])
        names = {cluster.state["name"] for cluster in clusters}
        required += [c for c in graph.run.of_type(CAPACITY_PROVIDERS) if c.inputs["clusterName"] in names]
    required += _listeners_of(graph, launch.target_groups)
    return required


def missing_before_start(run: ProgramRun) -> dict[str, list[str]]:
    """For each launch, the required resources it may start before (empty lists are left out)."""
    graph = DependencyGraph(run)
    missing = {}
    for launch in launches(run):
        waited = graph.waits_for(launch.resource)
        absent = [f"{r.type} {r.name}" for r in start_requirements(graph, launch) if r.urn not in waited]
        if absent:
            missing[launch.resource.name] = sorted(set(absent))
    return missing


def _task_needs(graph: DependencyGraph, task_definition: RecordedResource) -> list[RecordedResource]:
    inputs = task_definition.inputs
    roles = graph.with_identity(ROLE, [inputs["executionRoleArn"], inputs["taskRoleArn"]])
    needs = [
        policy
        for policy in graph.run.of_type(ROLE_POLICY)
        if any(policy.inputs["role"] in (role.id, role.state.get("name")) for role in roles)
    ]
    containers: list[dict[str, Any]] = _containers(inputs["containerDefinitions"])
    groups = {container["logConfiguration"]["options"]["awslogs-group"] for container in containers}
    needs += [group for group in graph.run.of_type(LOG_GROUP) if group.inputs.get("name") in groups]
    secret_arns = {secret["valueFrom"] for container in containers for secret in container.get("secrets", ())}
    secrets = graph.with_identity(SECRET, secret_arns)
    needs += [
        version
        for version in graph.run.of_type(SECRET_VERSION)
        if version.inputs["secretId"]
        in {identity for s in secrets for identity in (s.id, s.state.get("arn"))}
    ]
    return needs


def _containers(definitions: object) -> list[dict[str, Any]]:
    parsed = json.loads(definitions) if isinstance(definitions, str) else definitions
    assert isinstance(parsed, list), "containerDefinitions is a JSON list"
    return parsed


def _routes_out(graph: DependencyGraph, subnets: Iterable[str]) -> list[RecordedResource]:
    associations = [
        a for a in graph.run.of_type(ROUTE_TABLE_ASSOCIATION) if a.inputs["subnetId"] in set(subnets)
    ]
    tables = graph.with_identity(ROUTE_TABLE, [a.inputs["routeTableId"] for a in associations])
    gateways: list[RecordedResource] = []
    for table in tables:
        for route in table.inputs.get("routes") or ():
            gateways += graph.with_identity(NAT_GATEWAY, [route.get("natGatewayId")])
            gateways += graph.with_identity(INTERNET_GATEWAY, [route.get("gatewayId")])
    return [*associations, *tables, *gateways]


def _listeners_of(graph: DependencyGraph, target_group_arns: Iterable[str]) -> list[RecordedResource]:
    wanted = set(target_group_arns)
    if not wanted:
        return []
    balancers = {
        listener.inputs["loadBalancerArn"]
        for listener in graph.run.of_type(LISTENER)
        for action in listener.inputs.get("defaultActions") or ()
        if action.get("targetGroupArn") in wanted
    }
    return [
        listener
        for listener in graph.run.of_type(LISTENER)
        if listener.inputs["loadBalancerArn"] in balancers
    ]
