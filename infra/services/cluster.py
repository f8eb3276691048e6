"""The ECS cluster, with Fargate and Fargate Spot capacity, and the audit log of ECS Exec sessions.

Every ECS Exec session (`python -m infra.ops shell`) is recorded in one log group of the cluster
(logging OVERRIDE), encrypted with the stack's key when it has one; the task roles may write there
and nowhere else (`exec_policy`). With the key, the session channel is encrypted with it too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import iam

FARGATE, FARGATE_SPOT = "FARGATE", "FARGATE_SPOT"


def exec_audit_log_group_name(cluster_name: str) -> str:
    return f"/ecs/{cluster_name}/exec-sessions"


@dataclass(frozen=True)
class ClusterArgs:
    name: str  # the physical name: the queue-metrics publisher and the ops CLI address it by name
    container_insights: bool
    log_retention_days: int = 7  # of the ECS Exec session log
    key_arn: pulumi.Input[str] | None = None  # encrypts the session log and the session channel


class Cluster(pulumi.ComponentResource):
    arn: pulumi.Output[str]
    name: pulumi.Output[str]
    exec_audit_log_group_name: str
    exec_policy: pulumi.Output[str]  # what a task role needs for ECS Exec sessions (policy JSON)

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("djcelery:index:Cluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.exec_audit_log_group_name = exec_audit_log_group_name(args.name)
        audit_log = aws.cloudwatch.LogGroup(
            f"{name}-exec-sessions",
            name=self.exec_audit_log_group_name,
            retention_in_days=args.log_retention_days,
            kms_key_id=args.key_arn,
            opts=child,
        )
        encrypted = args.key_arn is not None
        cluster = aws.ecs.Cluster(
            f"{name}-ecs",
            name=args.name,
            settings=[
                aws.ecs.ClusterSettingArgs(
                    name="containerInsights", value="enabled" if args.container_insights else "disabled"
                )
            ],
            configuration=aws.ecs.ClusterConfigurationArgs(
                execute_command_configuration=aws.ecs.ClusterConfigurationExecuteCommandConfigurationArgs(
                    logging="OVERRIDE",
                    log_configuration=aws.ecs.ClusterConfigurationExecuteCommandConfigurationLogConfigurationArgs(
                        cloud_watch_log_group_name=audit_log.name,
                        # The agent refuses to record into a group without a KMS key when this is on.
                        cloud_watch_encryption_enabled=encrypted,
                    ),
                    kms_key_id=args.key_arn,
                )
            ),
            opts=child,
        )
        self.exec_policy = pulumi.Output.all(audit_log.arn, args.key_arn).apply(
            lambda values: json.dumps(iam.ecs_exec_policy(values[0], values[1]))
        )
        capacity = aws.ecs.ClusterCapacityProviders(
            f"{name}-capacity",
            cluster_name=cluster.name,
            capacity_providers=[FARGATE, FARGATE_SPOT],
            default_capacity_provider_strategies=[
                aws.ecs.ClusterCapacityProvidersDefaultCapacityProviderStrategyArgs(
                    capacity_provider=FARGATE, weight=1
                )
            ],
            opts=child,
        )
        self.arn = cluster.arn
        # Services name the cluster through this output, so they wait for its capacity providers.
        self.name = capacity.cluster_name
        self.register_outputs(
            {"arn": self.arn, "name": self.name, "exec_audit_log_group_name": self.exec_audit_log_group_name}
        )
