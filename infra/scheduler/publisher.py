"""The queue-metrics publisher that autoscaling acts on: what it measures, and what it may call.

It runs beside Beat (or alone without Beat), never on a worker queue, so it keeps measuring while
a pool is backlogged or at zero workers (app/queuemetrics).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi

from infra import iam
from infra.naming import Cloud, StackNames
from infra.workers.config import WorkerPoolConfig
from queuemetrics import schema


@dataclass(frozen=True)
class QueueMetricsPublisher:
    """What the queue-metrics publisher measures and where it writes (its container's environment)."""

    namespace: str
    interval_seconds: int
    pools_json: str  # QUEUE_METRICS_POOLS: which services consume which queues
    cluster_name: str


def queue_metrics_publisher(
    pools: tuple[WorkerPoolConfig, ...], names: StackNames, interval_seconds: int
) -> QueueMetricsPublisher:
    """The publisher of the stack's pools: their queues, and their services by physical name."""
    specs = [
        schema.PoolSpec(pool=pool.name, queues=pool.queues, service=names.service(pool.service_key))
        for pool in pools
    ]
    return QueueMetricsPublisher(
        names.metric_namespace, interval_seconds, schema.encode_pools(specs), names.cluster
    )


def publisher_policy_document(
    namespace: str, cluster_name: str, region: str, account_id: str, partition: str = "aws"
) -> iam.Policy:
    """The queue-metrics publisher's IAM permissions, and nothing else.

    PutMetricData has no resource ARN; the `cloudwatch:namespace` condition confines it to the
    stack's namespace. DescribeServices is limited to the services of the stack's cluster.
    """
    return iam.document(
        iam.statement(
            "PublishQueueMetrics",
            "cloudwatch:PutMetricData",
            "*",
            condition={"StringEquals": {"cloudwatch:namespace": namespace}},
        ),
        iam.statement(
            "ReadWorkerCounts",
            "ecs:DescribeServices",
            f"arn:{partition}:ecs:{region}:{account_id}:service/{cluster_name}/*",
        ),
    )


def publisher_task_policy(names: StackNames, cloud: Cloud) -> pulumi.Output[str]:
    """The publisher's task role policy, once the region and the account are known."""
    return pulumi.Output.all(cloud.region, cloud.account_id).apply(
        lambda values: json.dumps(publisher_policy_document(names.metric_namespace, names.cluster, *values))
    )
