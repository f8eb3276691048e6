"""A Fargate task definition with its log group and roles, and the ECS service that runs it.

`FargateTask` alone serves one-off tasks (the migrate task); `FargateService` wraps one for the
long-running roles. Every service rolls back a failed deployment by itself (the circuit breaker;
the alarms of one that shifts traffic), allows ECS Exec, runs on the latest
platform version and propagates its tags to its tasks. A service that `pulumi up` waits for rolls
its deployment back when `pulumi up` is interrupted (Ctrl-C, SIGINT).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pulumi
import pulumi_aws as aws

from infra import iam
from infra.image.config import CpuArchitecture
from infra.naming import StackNames
from infra.services.cluster import FARGATE, FARGATE_SPOT
from infra.services.containers import ContainerContext, ContainerSpec, container_definition, task_volumes
from infra.services.task_sizes import TaskSize


@dataclass(frozen=True)
class TaskRuntime:
    """What every task of the stack shares."""

    containers: pulumi.Output[ContainerContext]
    secret_arns: Sequence[pulumi.Input[str]]
    repository_arn: pulumi.Input[str]
    account_id: pulumi.Input[str]
    names: StackNames  # task definition families, log groups and services are named after the stack
    log_retention_days: int
    cpu_architecture: CpuArchitecture
    # A new task definition revision leaves the previous one registered, so ECS (circuit breaker)
    # and the release can roll back to it; off in ephemeral stacks, whose destroy removes everything.
    keep_previous_revisions: bool
    # Permissions of every task role (ECS Exec sessions, media files): suffix -> policy JSON.
    task_role_policies: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    # The stack's KMS key: it encrypts the log groups and the secrets the execution role reads.
    key_arn: pulumi.Input[str] | None = None


@dataclass(frozen=True)
class FargateTaskArgs:
    size: TaskSize
    containers: Sequence[ContainerSpec]  # the first is the task's main container
    runtime: TaskRuntime
    # Extra permissions of the task role for what the containers call: suffix -> policy JSON.
    task_role_policies: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)


class FargateTask(pulumi.ComponentResource):
    task_definition_arn: pulumi.Output[str]
    log_group_name: str
    container_name: str

    def __init__(self, name: str, args: FargateTaskArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("djcelery:index:FargateTask", name, None, opts)
        runtime = args.runtime
        self.log_group_name = f"/ecs/{runtime.names.prefix}/{name}"
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=self.log_group_name,
            retention_in_days=runtime.log_retention_days,
            kms_key_id=runtime.key_arn,
            opts=pulumi.ResourceOptions(parent=self),
        )
        execution_role, task_role = self._roles(name, args, log_group)
        definitions = runtime.containers.apply(
            lambda context: [
                container_definition(context, spec, self.log_group_name) for spec in args.containers
            ]
        )
        task_definition = aws.ecs.TaskDefinition(
            f"{name}-task-definition",
            family=f"{runtime.names.prefix}-{name}",
            cpu=str(args.size.cpu),
            memory=str(args.size.memory),
            network_mode="awsvpc",
            requires_compatibilities=["FARGATE"],
            runtime_platform=aws.ecs.TaskDefinitionRuntimePlatformArgs(
                operating_system_family="LINUX", cpu_architecture=runtime.cpu_architecture
            ),
            execution_role_arn=execution_role.arn,
            task_role_arn=task_role.arn,
            volumes=[aws.ecs.TaskDefinitionVolumeArgs(name=volume["name"]) for volume in task_volumes()],
            container_definitions=definitions.apply(json.dumps),
            skip_destroy=runtime.keep_previous_revisions,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group]),
        )
        self.container_name = args.containers[0].role.value
        self.task_definition_arn = task_definition.arn
        self.register_outputs(
            {"task_definition_arn": self.task_definition_arn, "log_group_name": self.log_group_name}
        )

    def _roles(
        self, name: str, args: FargateTaskArgs, log_group: aws.cloudwatch.LogGroup
    ) -> tuple[aws.iam.Role, aws.iam.Role]:
        """The execution role (ECS pulls the image, writes logs, reads the secrets at start) and the
        task role (the app's own AWS calls: media files, ECS Exec sessions, the role's own)."""
        runtime, child = args.runtime, pulumi.ResourceOptions(parent=self)
        trust_policy = pulumi.Output.from_input(runtime.account_id).apply(
            lambda account: json.dumps(iam.ecs_tasks_trust_policy(account))
        )
        execution_role = aws.iam.Role(
            f"{name}-execution-role",
            assume_role_policy=trust_policy,
            description=f"ECS starts {name} tasks: image, logs, secrets",
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-execution",
            role=execution_role.id,
            policy=pulumi.Output.all(
                list(runtime.secret_arns), runtime.repository_arn, log_group.arn, runtime.key_arn
            ).apply(lambda values: json.dumps(iam.execution_role_policy(*values))),
            opts=child,
        )
        task_role = aws.iam.Role(
            f"{name}-task-role",
            assume_role_policy=trust_policy,
            description=f"AWS calls made by the {name} app containers",
            opts=child,
        )
        for suffix, policy in {**runtime.task_role_policies, **args.task_role_policies}.items():
            aws.iam.RolePolicy(f"{name}-task-{suffix}", role=task_role.id, policy=policy, opts=child)
        return execution_role, task_role


@dataclass(frozen=True)
class Placement:
    """Where the services run."""

    cluster_arn: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_ids: Sequence[pulumi.Input[str]]
    assign_public_ip: pulumi.Input[bool]  # a thin preview reads it from its base's outputs


# The AWS provider waits this long for a service update with `wait_for_steady_state` unless told
# otherwise (terraform-provider-aws aws_ecs_service: create, update and delete timeouts of 20 min).
DEFAULT_WAIT_MINUTES = 20


@dataclass(frozen=True)
class TrafficShift:
    """A deployment other than rolling: ECS starts the new revision in the alternate target group
    and moves production traffic to it by rewriting the production listener rule's weights
    (botocore ECS model: DeploymentConfiguration, LoadBalancer.advancedConfiguration)."""

    deployment_configuration: aws.ecs.ServiceDeploymentConfigurationArgs
    advanced_configuration: aws.ecs.ServiceLoadBalancerAdvancedConfigurationArgs
    alarm_names: Sequence[pulumi.Input[str]]  # any of them in ALARM rolls the deployment back
    # The circuit breaker too (tasks that never become healthy): ECS documents it for rolling and
    # blue/green deployments only (developer guide, "Amazon ECS deployment failure detection").
    circuit_breaker: bool
    # How long a deployment may hold `pulumi up` beyond starting tasks: traffic steps and bake time.
    watched_minutes: int


@dataclass(frozen=True)
class LoadBalancerTarget:
    target_group_arn: pulumi.Input[str]
    container_name: str
    container_port: int
    health_check_grace_period_seconds: int
    traffic_shift: TrafficShift | None = None  # None: a rolling deployment


class RolloutGate(Protocol):
    """What must pass before a service rolls to its task definition (a worker pool's canary).

    `gate` declares it for the service's task and returns the resource the service waits for."""

    def gate(self, task: FargateTask) -> pulumi.Resource: ...


@dataclass(frozen=True)
class FargateServiceArgs:
    task: FargateTaskArgs
    placement: Placement
    desired_count: int
    spot: bool = False
    minimum_healthy_percent: int = 100
    maximum_percent: int = 200
    # Rebalancing starts a task in another AZ before stopping one: never for a singleton.
    availability_zone_rebalancing: bool = True
    # Application Auto Scaling owns the task count once the service exists.
    autoscaled: bool = False
    load_balancer: LoadBalancerTarget | None = None
    # Makes `pulumi up` wait until the new tasks are healthy (or rolled back).
    wait_for_steady_state: bool = False
    depends_on: Sequence[pulumi.Resource] = ()
    rollout_gate: RolloutGate | None = None


class FargateService(pulumi.ComponentResource):
    key: str  # the logical name, also the end of the physical name (StackNames.service)
    service_name: pulumi.Output[str]
    task: FargateTask

    def __init__(
        self, name: str, args: FargateServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("djcelery:index:FargateService", name, None, opts)
        self.key = name
        self.task = FargateTask(name, args.task, pulumi.ResourceOptions(parent=self))
        gates = [args.rollout_gate.gate(self.task)] if args.rollout_gate else []
        placement = args.placement
        service = aws.ecs.Service(
            f"{name}-service",
            name=args.task.runtime.names.service(name),
            cluster=placement.cluster_arn,
            task_definition=self.task.task_definition_arn,
            desired_count=args.desired_count,
            capacity_provider_strategies=[
                aws.ecs.ServiceCapacityProviderStrategyArgs(
                    capacity_provider=FARGATE_SPOT if args.spot else FARGATE, weight=1
                )
            ],
            platform_version="LATEST",
            # Needed to change the capacity provider (Spot on or off); a new deployment on every
            # service update is what an update means here anyway.
            force_new_deployment=True,
            network_configuration=aws.ecs.ServiceNetworkConfigurationArgs(
                subnets=list(placement.subnet_ids),
                security_groups=list(placement.security_group_ids),
                assign_public_ip=placement.assign_public_ip,
            ),
            deployment_minimum_healthy_percent=args.minimum_healthy_percent,
            deployment_maximum_percent=args.maximum_percent,
            availability_zone_rebalancing="ENABLED" if args.availability_zone_rebalancing else "DISABLED",
            enable_execute_command=True,
            enable_ecs_managed_tags=True,
            propagate_tags="SERVICE",
            wait_for_steady_state=args.wait_for_steady_state,
            # Ctrl-C on a `pulumi up` that waits rolls the deployment back (it needs the wait).
            sigint_rollback=args.wait_for_steady_state or None,
            **rollback_settings(args.load_balancer.traffic_shift if args.load_balancer else None),
            **load_balancer_settings(args.load_balancer),
            opts=pulumi.ResourceOptions(
                parent=self,
                custom_timeouts=wait_timeouts(args),
                # Its own task's roles and policies too: the task definition names only the roles.
                depends_on=[*args.depends_on, self.task, *gates],
                ignore_changes=["desired_count"] if args.autoscaled else None,
                # A fixed name cannot exist twice, so a replacement deletes the old service first.
                delete_before_replace=True,
            ),
        )
        self.service_name = service.name
        self.register_outputs({"service_name": self.service_name})


def rollback_settings(shift: TrafficShift | None) -> dict[str, Any]:
    """What fails a deployment and rolls it back: the circuit breaker (tasks that do not start or
    stay unhealthy) where ECS supports it, and the alarms of a traffic-shifting deployment."""
    breaker = shift is None or shift.circuit_breaker
    settings: dict[str, Any] = {
        "deployment_circuit_breaker": aws.ecs.ServiceDeploymentCircuitBreakerArgs(
            enable=breaker, rollback=breaker
        )
    }
    if shift is not None:
        settings["deployment_configuration"] = shift.deployment_configuration
        settings["alarms"] = aws.ecs.ServiceAlarmsArgs(
            alarm_names=list(shift.alarm_names), enable=True, rollback=True
        )
    return settings


def load_balancer_settings(target: LoadBalancerTarget | None) -> dict[str, Any]:
    if target is None:
        return {}
    shift = target.traffic_shift
    return {
        "load_balancers": [
            aws.ecs.ServiceLoadBalancerArgs(
                target_group_arn=target.target_group_arn,
                container_name=target.container_name,
                container_port=target.container_port,
                advanced_configuration=shift.advanced_configuration if shift else None,
            )
        ],
        "health_check_grace_period_seconds": target.health_check_grace_period_seconds,
    }


def wait_timeouts(args: FargateServiceArgs) -> pulumi.CustomTimeouts | None:
    """A `pulumi up` that waits for the deployment waits through its traffic steps and bake too."""
    if not args.wait_for_steady_state:
        return None
    shift = args.load_balancer.traffic_shift if args.load_balancer else None
    minutes = DEFAULT_WAIT_MINUTES + (shift.watched_minutes if shift else 0)
    return pulumi.CustomTimeouts(create=f"{minutes}m", update=f"{minutes}m")
