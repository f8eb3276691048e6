"""How long a fresh `pulumi up` takes: the critical path through the recorded graph.

The engine creates each resource as soon as its dependencies exist, so a fresh stack is ready when
the longest chain of create times is done. Create times are typical values per resource type,
not measurements (a real run varies by region and load); their sources are named beside them. An
ECS service that `pulumi up` waits for is timed from what it declares: a Fargate task's start, then
its target group's health checks, then the wait's polling.
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


# A Fargate task from RunTask or a service to RUNNING: the whole image pulled (Fargate caches no
# layers: ECS developer guide, "Fargate container image pull behavior") and its network interface
# attached; about a minute for the app's image, as the one-off tasks below.
FARGATE_TASK_START_SECONDS = MINUTE
# The service scheduler places the task and registers it with its target group once it runs.
SERVICE_PLACEMENT_SECONDS = 30
# The app's report and migrations on an empty database: 1.1 s on a 2-core machine (`manage.py
# locked_migrate` on a new PostgreSQL database); a Fargate task of a quarter vCPU is about 4 times
# slower, and the budget leaves 3 times that for the round trips to RDS.
EMPTY_DATABASE_MIGRATE_SECONDS = 15
# How often a wait for a stable service asks ECS (botocore's ECS waiter `ServicesStable`: delay 15).
STEADY_STATE_POLL_SECONDS = 15


def _service(resource: RecordedResource, run: ProgramRun) -> CreateTime:
    if not resource.inputs.get("waitForSteadyState"):
        return CreateTime(15, "ECS CreateService returns without waiting for tasks")
    checks = _health_check_seconds(resource, run)
    return CreateTime(
        FARGATE_TASK_START_SECONDS + SERVICE_PLACEMENT_SECONDS + checks + STEADY_STATE_POLL_SECONDS,
        f"ECS service to steady state: task start {FARGATE_TASK_START_SECONDS} s, placement and "
        f"registration {SERVICE_PLACEMENT_SECONDS} s, {checks} s of target health checks, one "
        f"{STEADY_STATE_POLL_SECONDS} s poll",
    )


def _health_check_seconds(service: RecordedResource, run: ProgramRun) -> int:
    """A new target is healthy after HealthyThresholdCount consecutive passing checks, one every
    HealthCheckIntervalSeconds (ELB user guide, "Health checks for Application Load Balancer target
    groups"); the slowest of the service's target groups."""
    arns = {balancer.get("targetGroupArn") for balancer in service.inputs.get("loadBalancers") or []}
    groups = [
        group for group in run.of_type("aws:lb/targetGroup:TargetGroup") if group.state.get("arn") in arns
    ]
    return max(
        (
            int(group.inputs["healthCheck"]["healthyThreshold"])
            * int(group.inputs["healthCheck"]["interval"])
            for group in groups
        ),
        default=0,
    )


def _dynamic(resource: RecordedResource) -> CreateTime:
    if "tenant" in resource.inputs:
        return CreateTime(
            FARGATE_TASK_START_SECONDS + 10,
            "preview tenant: one Fargate task running `preview_tenant create`, seconds of SQL",
        )
    if "listener_arn" in resource.inputs:
        return CreateTime(DEFAULT_CREATE_SECONDS, "preview capacity check: two ELB Describe calls")
    if "repository_url" in resource.inputs:
        return CreateTime(MINUTE, "image promotion: an ECR-to-ECR copy of a ~200 MB image, under 1 min")
    if "pool" in resource.inputs:
        return CreateTime(
            DEFAULT_CREATE_SECONDS,
            "worker canary of a fresh stack: skipped, the pool's service does not run yet (one "
            "DescribeServices; infra/workers/canary_provider.py)",
        )
    if "subnet_ids" in resource.inputs:
        return CreateTime(
            FARGATE_TASK_START_SECONDS + EMPTY_DATABASE_MIGRATE_SECONDS,
            "first release: one Fargate task reports, then migrates the empty database "
            "(release_state --migrate-if-empty)",
        )
    return CreateTime(15, "rollout check: one DescribeServices of a service already steady")


def _image(resource: RecordedResource) -> CreateTime:
    if (resource.inputs.get("build") or {}).get("cacheFrom"):
        return CreateTime(
            MINUTE,
            "image build from a cached image: its layers pulled (about a third of the 222 MB image, "
            "compressed), the code layers rebuilt (bench/image.py: 2 s after a code change), a few "
            "MB pushed",
        )
    return CreateTime(
        3 * MINUTE, "image build and push on a cold builder (bench/image.py measures the build)"
    )


CREATE_TIMES: dict[str, Callable[[RecordedResource], CreateTime]] = {
    "aws:rds/instance:Instance": _rds,
    "aws:elasticache/replicationGroup:ReplicationGroup": _replication_group,
    "aws:ec2/natGateway:NatGateway": lambda _: CreateTime(
        2 * MINUTE, "NAT gateway: 1-3 min (VPC user guide)"
    ),
    "aws:lb/loadBalancer:LoadBalancer": lambda _: CreateTime(3 * MINUTE, "ALB provisioning: 2-4 min"),
    "docker:index/image:Image": _image,
    "pulumi-python:dynamic:Resource": _dynamic,
    "aws:ecs/cluster:Cluster": lambda _: CreateTime(10, "ECS cluster"),
    "pulumi:pulumi:StackReference": lambda _: CreateTime(
        2, "a read of another stack's outputs from the state backend: no AWS call"
    ),
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


def create_time(resource: RecordedResource, run: ProgramRun) -> CreateTime:
    if resource.type == "aws:ecs/service:Service":
        return _service(resource, run)
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
        return start + create_time(resource, run).seconds, (*chain, urn)

    seconds, chain = max(finish(urn) for urn in resources)
    return CriticalPath(seconds, tuple(resources[urn] for urn in chain))
