"""The ECS cluster, with Fargate and Fargate Spot capacity."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

FARGATE, FARGATE_SPOT = "FARGATE", "FARGATE_SPOT"


@dataclass(frozen=True)
class ClusterArgs:
    name: str  # the physical name: the queue-metrics publisher and the ops CLI address it by name
    container_insights: bool


class Cluster(pulumi.ComponentResource):
    arn: pulumi.Output[str]
    name: pulumi.Output[str]

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("djcelery:index:Cluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
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
                    logging="DEFAULT"
                )
            ),
            opts=child,
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
        self.register_outputs({"arn": self.arn, "name": self.name})
