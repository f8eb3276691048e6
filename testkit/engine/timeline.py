"""How long a fresh `pulumi up` takes: the critical path through the recorded graph.

The engine creates each resource as soon as its dependencies exist, so a fresh stack is ready when
the longest chain of create times is done. Create times are typical values per resource type,
not measurements (a real run varies by region and load); their sources are named beside them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from testkit.engine.graph import DependencyGraph
from testkit.program import ProgramRun, RecordedResource

MINUTE = 60
# Anything not listed: an API call or two (IAM, security groups, log groups, alarms, secrets).
DEFAULT_CREATE_SECONDS = 5


@dataclass(frozen=True)
class CreateTime:
    seconds: int
    source: str


def _rds(resource: RecordedResource) -> CreateTime:
    if resource.inputs.get("multiAz"):
        return CreateTime(
            15 * MINUTE, "RDS Multi-AZ instance: 10-20 min (AWS RDS user guide, common experience)"
        )
    return CreateTime(10 * MINUTE, "RDS instance: 5-15 min (AWS RDS user guide, common experience)")


def _replication_group(resource: RecordedResource) -> CreateTime:
    if int(resource.inputs.get("numCacheClusters") or 1) > 1:
        return CreateTime(15 * MINUTE, "ElastiCache with a replica: 10-20 min (ElastiCache user guide)")
    return CreateTime(10 * MINUTE, "ElastiCache replication group: 5-15 min (ElastiCache user guide)")


def _service(resource: RecordedResource) -> CreateTime:
    if resource.inputs.get("waitForSteadyState"):
        return CreateTime(4 * MINUTE, "ECS service to steady state: 1-5 min (pull, start, 2 health checks)")
    return CreateTime(15, "ECS CreateService returns without waiting for tasks")


def _dynamic(resource: RecordedResource) -> CreateTime:
    if "repository_url" in resource.inputs:
        return CreateTime(MINUTE, "image promotion: an ECR-to-ECR copy of a ~200 MB image, under 1 min")
    if "subnet_ids" in resource.inputs:
        return CreateTime(
            3 * MINUTE,
            "release: two Fargate tasks (the release check, then migrations), each about 1 min to start "
            "(image pull, ENI), migrations 1 min",
        )
    return CreateTime(15, "rollout check: one DescribeServices of a service already steady")


CREATE_TIMES: dict[str, Callable[[RecordedResource], CreateTime]] = {
    "aws:rds/instance:Instance": _rds,
    "aws:elasticache/replicationGroup:ReplicationGroup": _replication_group,
    "aws:ecs/service:Service": _service,
    "aws:ec2/natGateway:NatGateway": lambda _: CreateTime(
        2 * MINUTE, "NAT gateway: 1-3 min (VPC user guide)"
    ),
    "aws:lb/loadBalancer:LoadBalancer": lambda _: CreateTime(3 * MINUTE, "ALB provisioning: 2-4 min"),
    "docker:index/image:Image": lambda _: CreateTime(
        3 * MINUTE, "image build and push on a cold builder (bench/image.py measures the build)"
    ),
    "pulumi-python:dynamic:Resource": _dynamic,
    "aws:ecs/cluster:Cluster": lambda _: CreateTime(10, "ECS cluster"),
    "aws:iam/role:Role": lambda _: CreateTime(10, "IAM role, with propagation"),
    "aws:route53/record:Record": lambda _: CreateTime(
        MINUTE, "Route 53 change until INSYNC, which the provider waits for: about 60 s"
    ),
    "aws:acm/certificateValidation:CertificateValidation": lambda _: CreateTime(
        5 * MINUTE, "ACM DNS validation once the record is in the zone: minutes, up to 30 (ACM user guide)"
    ),
    "aws:wafv2/webAclAssociation:WebAclAssociation": lambda _: CreateTime(
        MINUTE, "WAF association with a new ALB: the provider retries until WAF can see the ALB"
    ),
}


def create_time(resource: RecordedResource) -> CreateTime:
    estimate = CREATE_TIMES.get(resource.type)
    return estimate(resource) if estimate else CreateTime(DEFAULT_CREATE_SECONDS, "an API call")


@dataclass(frozen=True)
class CriticalPath:
    seconds: int
    chain: tuple[RecordedResource, ...]  # first created first

    @property
    def minutes(self) -> float:
        return round(self.seconds / MINUTE, 1)


def critical_path(run: ProgramRun) -> CriticalPath:
    """The chain of dependencies that finishes last, and when (seconds from the start)."""
    graph = DependencyGraph(run)
    resources = {resource.urn: resource for resource in graph.custom_resources()}

    @cache
    def finish(urn: str) -> tuple[int, tuple[str, ...]]:
        resource = resources[urn]
        before = [
            finish(dependency)
            for dependency in graph.direct_dependencies(resource)
            if dependency in resources
        ]
        start, chain = max(before, default=(0, ()))
        return start + create_time(resource).seconds, (*chain, urn)

    seconds, chain = max(finish(urn) for urn in resources)
    return CriticalPath(seconds, tuple(resources[urn] for urn in chain))
