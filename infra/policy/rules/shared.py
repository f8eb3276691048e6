"""What every area's rules are made of: the `Rule` type, its two builders, the resource types the
rules read and the helpers that read Pulumi properties.

A resource rule checks one resource's inputs (camelCase names, as the engine sends them); a stack
rule sees every resource's outputs once the stack is done, so it can compare resources. The
resource types are in one table because several rules read types of more than one area.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

Props = Mapping[str, Any]
# A resource check yields one message per violation; a stack check yields (urn, message).
ResourceCheck = Callable[[Props], Iterable[str]]
StackCheck = Callable[[Sequence[PolicyResource]], Iterable[tuple[str, str]]]

RDS_INSTANCE = "aws:rds/instance:Instance"
RDS_PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
REPLICATION_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
CACHE_PARAMETER_GROUP = "aws:elasticache/parameterGroup:ParameterGroup"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
ECS_SERVICE = "aws:ecs/service:Service"
ECS_CLUSTER = "aws:ecs/cluster:Cluster"
ECR_REPOSITORY = "aws:ecr/repository:Repository"
ECR_LIFECYCLE_POLICY = "aws:ecr/lifecyclePolicy:LifecyclePolicy"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
WEB_ACL_ASSOCIATION = "aws:wafv2/webAclAssociation:WebAclAssociation"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SECURITY_GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
NAT_GATEWAY = "aws:ec2/natGateway:NatGateway"
IAM_ROLE = "aws:iam/role:Role"
IAM_ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
IAM_POLICY = "aws:iam/policy:Policy"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
S3_BUCKET = "aws:s3/bucket:Bucket"
S3_PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
S3_BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
S3_VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
S3_ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
KMS_KEY = "aws:kms/key:Key"
SECRET = "aws:secretsmanager/secret:Secret"  # noqa: S105 - a resource type, not a password
SNS_TOPIC = "aws:sns/topic:Topic"
# A Python dynamic resource (the release, the image promotion, the worker canaries).
DYNAMIC_RESOURCE = "pulumi-python:dynamic:Resource"


@dataclass(frozen=True)
class Rule:
    """One guardrail: the pulumi-policy policy plus what the docs and the tier config need."""

    policy: ResourceValidationPolicy | StackValidationPolicy
    controls: tuple[str, ...]  # AWS Security Hub control ids; empty where no control exists
    relaxable: bool  # advisory in dev and ephemeral stacks (cost or teardown), mandatory in prod

    @property
    def name(self) -> str:
        return self.policy.name


def _describe(summary: str, controls: Sequence[str]) -> str:
    return f"{summary} [{', '.join(controls)}]" if controls else summary


def resource_rule(
    name: str,
    summary: str,
    controls: Sequence[str],
    resource_types: Iterable[str],
    check: ResourceCheck,
    relaxable: bool = False,
) -> Rule:
    types = frozenset(resource_types)

    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        if args.resource_type in types:
            for message in check(args.props):
                report(message, None)

    policy = ResourceValidationPolicy(name=name, description=_describe(summary, controls), validate=validate)
    return Rule(policy, tuple(controls), relaxable)


def stack_rule(
    name: str, summary: str, controls: Sequence[str], check: StackCheck, relaxable: bool = False
) -> Rule:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        for urn, message in check(args.resources):
            report(message, urn)

    policy = StackValidationPolicy(name=name, description=_describe(summary, controls), validate=validate)
    return Rule(policy, tuple(controls), relaxable)


# --- Reading properties -----------------------------------------------------------------------
# The analyzer hands policies read-only Mapping/Sequence proxies, not dicts and lists, so the
# helpers test for the abstract types.


def as_list(value: Any) -> list[Any]:
    """A property that may be missing, one value, or a list of values, as a list."""
    if value is None:
        return []
    if isinstance(value, str | Mapping) or not isinstance(value, Sequence):
        return [value]
    return list(value)


def is_present(props: Props, key: str) -> bool:
    # Iterating the keys never reads a value, so this also works for a value that is still
    # unknown during preview (e.g. a generated password).
    return key in list(props)


def of_type(resources: Sequence[PolicyResource], *types: str) -> list[PolicyResource]:
    return [resource for resource in resources if resource.resource_type in types]


def parameters_of(group: PolicyResource) -> dict[str, str]:
    """An RDS or ElastiCache parameter group's parameters, by name."""
    return {str(p["name"]): str(p["value"]) for p in as_list(group.props.get("parameters"))}


def group_named(groups: Sequence[PolicyResource], name: Any) -> PolicyResource | None:
    return next((group for group in groups if name is not None and group.props.get("name") == name), None)


def parameter_required(
    resources: Sequence[PolicyResource], server_type: str, group_type: str, parameter: str, value: str,
    why: str,
) -> Iterator[tuple[str, str]]:
    """Each server of `server_type` names a parameter group of this stack that sets `parameter` to
    `value` (the default groups cannot be changed, so the setting needs a group of the stack's own)."""
    groups = of_type(resources, group_type)
    for server in of_type(resources, server_type):
        group = group_named(groups, server.props.get("parameterGroupName"))
        if group is None:
            yield (
                server.urn,
                f"parameterGroupName must name a parameter group of this stack that sets {parameter}={value}",
            )
        elif parameters_of(group).get(parameter) != value:
            yield group.urn, f"parameter {parameter} must be {value} ({why})"


def statements(policy: Any) -> list[Any]:
    """The statements of a policy document (a JSON string or already parsed)."""
    document = json.loads(policy) if isinstance(policy, str) else policy
    return as_list((document or {}).get("Statement"))
