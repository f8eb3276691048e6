"""ElastiCache as the Celery broker: one shard (cluster mode disabled), TLS and AUTH, no eviction.

Celery's Redis transport needs a single keyspace (multi-key commands), and a broker that evicts
keys under memory pressure silently drops queued tasks, hence `maxmemory-policy noeviction`.
With a replica, ElastiCache fails over automatically to the other AZ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from infra.data.config import BrokerConfig
from infra.data.urls import redis_url
from infra.network.network import REDIS_PORT


@dataclass(frozen=True)
class BrokerArgs:
    config: BrokerConfig
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    protect: bool  # Pulumi `protect` on the replication group (it holds the queued tasks)
    # The stack's KMS key for data at rest; None: ElastiCache's default key. Changing it replaces
    # the replication group.
    key_arn: pulumi.Input[str] | None = None


class Broker(pulumi.ComponentResource):
    url: pulumi.Output[str]  # secret: REDIS_URL
    replication_group_id: pulumi.Output[str]
    member_cluster_ids: pulumi.Output[Sequence[str]]  # the nodes' CacheClusterId metric dimension

    def __init__(self, name: str, args: BrokerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("djcelery:index:Broker", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        config = args.config
        subnets = aws.elasticache.SubnetGroup(
            f"{name}-subnets", subnet_ids=list(args.subnet_ids), description="Celery broker", opts=child
        )
        parameters = aws.elasticache.ParameterGroup(
            f"{name}-parameters",
            family=config.parameter_group_family,
            description="Celery broker: never evict queued tasks",
            parameters=[
                aws.elasticache.ParameterGroupParameterArgs(name="maxmemory-policy", value="noeviction")
            ],
            opts=child,
        )
        # ElastiCache AUTH tokens allow only a few special characters; letters and digits avoid them all.
        auth_token = random.RandomPassword(f"{name}-auth-token", length=64, special=False, opts=child)
        highly_available = config.replicas > 0
        group = aws.elasticache.ReplicationGroup(
            f"{name}-redis",
            description="Celery broker and result backend",
            engine=config.engine,
            engine_version=config.engine_version,
            node_type=config.node_type,
            num_cache_clusters=1 + config.replicas,
            cluster_mode="disabled",
            automatic_failover_enabled=highly_available,
            multi_az_enabled=highly_available,
            parameter_group_name=parameters.name,
            port=REDIS_PORT,
            subnet_group_name=subnets.name,
            security_group_ids=[args.security_group_id],
            at_rest_encryption_enabled=True,
            kms_key_id=args.key_arn,
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            auth_token=auth_token.result,
            auto_minor_version_upgrade=True,
            snapshot_retention_limit=config.snapshot_retention_days,
            apply_immediately=True,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        self.replication_group_id = group.id
        self.member_cluster_ids = group.member_clusters
        self.url = pulumi.Output.secret(
            pulumi.Output.all(auth_token.result, group.primary_endpoint_address, group.port).apply(
                lambda values: redis_url(values[0], values[1], int(values[2]))
            )
        )
        self.register_outputs({"replication_group_id": self.replication_group_id})
