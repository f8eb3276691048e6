"""The metrics the stack's dashboard and its alarms for people watch, defined once for both.

Everything here is pure and built from plain values (the query builders are infra/cloudwatch).
Queue metric names and dimensions come from the publisher's schema (app/queuemetrics/schema.py);
AWS metrics are addressed the way their services publish them:

- AWS/ApplicationELB by `LoadBalancer` (the ALB's ARN suffix), target metrics also by `TargetGroup`;
- AWS/ECS by `ClusterName` and `ServiceName` (service CPU, published without Container Insights);
- AWS/WAFV2 by `WebACL` (its name), `Region` and `Rule` (a rule's metric name, or ALL);
- AWS/RDS by `DBInstanceIdentifier`;
- AWS/ElastiCache by `CacheClusterId` of each member cluster (node-level metrics have no
  replication-group dimension).

Worker counts come from the publisher (`PoolDesiredWorkers`, `PoolRunningWorkers`), which reads
them from ECS every interval: Container Insights' task counts exist only where it is on, and it
is off in dev. Beat's task count comes from the publisher too: it runs beside Beat, one copy per
Beat task, and writes one `PoolBacklog` datapoint per pool per interval, so datapoints per minute
x interval / 60 is the number of Beat tasks running.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from infra.cloudwatch.alarm import Watched
from infra.cloudwatch.load_balancer import (
    ALB_NAMESPACE,
    load_balancer_5xx_rate,
    load_balancer_metric,
)
from infra.cloudwatch.metrics import MINUTE, Expression, Metric, queue_metric
from queuemetrics import schema

RDS_NAMESPACE = "AWS/RDS"
ECS_NAMESPACE = "AWS/ECS"
WAF_NAMESPACE = "AWS/WAFV2"
CACHE_NAMESPACE = "AWS/ElastiCache"
EVENTS_NAMESPACE = "AWS/Events"
SQS_NAMESPACE = "AWS/SQS"

GIB = 2**30
# Beat is counted from publisher datapoints; a period holding at least this many of them per
# Beat task keeps the count within +-25 % when a tick lands just inside or outside the period.
BEAT_SAMPLES_PER_PERIOD = 4
# How many minutes a condition must hold before people are told (deploys cause short blips).
SUSTAINED_MINUTES = 5


@dataclass(frozen=True)
class WebTier:
    """The web service's scaling range and targets, and its firewall, as plain values."""

    cluster: str
    service: str
    min_count: int
    max_count: int
    requests_per_task: int  # the request-tracking target, per task and minute
    cpu_percent: int  # the CPU-tracking target
    web_acl: str | None  # the WAF web ACL's name; None without WAF
    waf_rules: tuple[str, ...] = ()  # the metric names of its rules
    waf_counting_rules: tuple[str, ...] = ()  # those of them with rules that count instead of block


@dataclass(frozen=True)
class MonitoredStack:
    """The names under which the stack's resources publish metrics, as plain values."""

    region: str
    load_balancer: str  # ALB ARN suffix: app/<name>/<id>
    target_group: str  # target group ARN suffix: targetgroup/<name>/<id>
    db_instance: str
    db_allocated_storage_gib: int
    cache_clusters: tuple[str, ...]  # member clusters of the broker's replication group
    queue_namespace: str
    pools: Mapping[str, tuple[str, ...]]  # worker pool -> its queues
    publish_interval_seconds: int
    beat_pool: str | None  # the pool whose publisher datapoints count Beat tasks; None: no Beat
    web: WebTier | None = None  # None: no web scaling or firewall widgets
    deployment_rule: str = ""  # the EventBridge rule that forwards deployment events to people
    deployment_dead_letters: str = ""  # the SQS queue of the events that rule failed to deliver
    schedule_alarms: tuple[str, ...] = ()  # ARNs of the alarms of the Beat schedule's entries
    # The second target group of a traffic-shifting web deployment: each deployment moves the web
    # tasks to the other group, so web target metrics combine both. None: one target group.
    alternate_target_group: str | None = None

    @property
    def target_groups(self) -> tuple[str, ...]:
        return (self.target_group, *([self.alternate_target_group] if self.alternate_target_group else []))


# --- The metrics ------------------------------------------------------------------------------------


def alb_metric(stack: MonitoredStack, name: str, statistic: str, label: str) -> Metric:
    return load_balancer_metric(stack.load_balancer, name, statistic, label)


def target_group_metric(
    stack: MonitoredStack, name: str, statistic: str, label: str, target_group: str | None = None
) -> Metric:
    dimensions = (("TargetGroup", target_group or stack.target_group), ("LoadBalancer", stack.load_balancer))
    return Metric(ALB_NAMESPACE, name, dimensions, statistic, label)


def web_targets_metric(stack: MonitoredStack, name: str, statistic: str, label: str, combine: str) -> Watched:
    """A metric of the web tasks' targets: of the one target group, or `combine` (SUM, MAX) over
    both groups of a traffic-shifting deployment, whichever holds the tasks now."""
    if len(stack.target_groups) == 1:
        return target_group_metric(stack, name, statistic, label)
    inputs = {
        f"group{index}": target_group_metric(stack, name, statistic, f"{label} (group {index + 1})", group)
        for index, group in enumerate(stack.target_groups)
    }
    return Expression(f"{combine}([{', '.join(f'FILL({key}, 0)' for key in inputs)}])", label, inputs)


def web_service_metric(web: WebTier, name: str, statistic: str, label: str) -> Metric:
    dimensions = (("ClusterName", web.cluster), ("ServiceName", web.service))
    return Metric(ECS_NAMESPACE, name, dimensions, statistic, label)


def waf_metric(stack: MonitoredStack, web_acl: str, name: str, rule: str, label: str) -> Metric:
    """A WAF metric of one rule (by its metric name), or of the whole web ACL with rule ALL."""
    dimensions = (("WebACL", web_acl), ("Region", stack.region), ("Rule", rule))
    return Metric(WAF_NAMESPACE, name, dimensions, "Sum", label)


def deployment_rule_metric(stack: MonitoredStack, name: str, label: str) -> Metric:
    """An EventBridge rule metric (AWS/Events by RuleName) of the deployment-events rule."""
    return Metric(EVENTS_NAMESPACE, name, (("RuleName", stack.deployment_rule),), "Sum", label)


def dead_letters_waiting(stack: MonitoredStack) -> Metric:
    """Deployment events EventBridge gave up delivering (AWS/SQS by QueueName)."""
    dimensions = (("QueueName", stack.deployment_dead_letters),)
    return Metric(
        SQS_NAMESPACE, "ApproximateNumberOfMessagesVisible", dimensions, "Maximum", "undelivered events"
    )


def database_metric(stack: MonitoredStack, name: str, statistic: str, label: str) -> Metric:
    return Metric(RDS_NAMESPACE, name, (("DBInstanceIdentifier", stack.db_instance),), statistic, label)


def cache_metrics(stack: MonitoredStack, name: str, statistic: str) -> dict[str, Metric]:
    """One metric per member cluster, keyed by a query id (primary and replicas swap on failover)."""
    return {
        f"node{index}": Metric(CACHE_NAMESPACE, name, (("CacheClusterId", cluster),), statistic, cluster)
        for index, cluster in enumerate(stack.cache_clusters)
    }


def app_metric(
    stack: MonitoredStack,
    definition: schema.MetricDefinition,
    statistic: str,
    label: str,
    period: int = MINUTE,
) -> Metric:
    """A metric the publisher reads from the app itself (no pool or queue dimension)."""
    return Metric(stack.queue_namespace, definition.name, (), statistic, label, period)


def web_5xx_rate(stack: MonitoredStack) -> Expression:
    return load_balancer_5xx_rate(stack.load_balancer)


def beat_period_seconds(publish_interval_seconds: int) -> int:
    """The shortest whole-minute period with BEAT_SAMPLES_PER_PERIOD publisher datapoints."""
    return math.ceil(BEAT_SAMPLES_PER_PERIOD * publish_interval_seconds / MINUTE) * MINUTE


def beat_tasks(stack: MonitoredStack, beat_pool: str) -> Expression:
    """Beat tasks running: datapoints of one publisher metric per period / datapoints per task."""
    period = beat_period_seconds(stack.publish_interval_seconds)
    samples = queue_metric(
        stack.queue_namespace,
        schema.POOL_BACKLOG,
        "SampleCount",
        "publisher datapoints",
        beat_pool,
        period=period,
    )
    return Expression(
        text=f"FILL(samples, 0) * {stack.publish_interval_seconds} / {period}",
        label="Beat tasks running",
        inputs={"samples": samples},
    )


def cache_sum(stack: MonitoredStack, name: str, statistic: str, label: str) -> Expression:
    inputs = cache_metrics(stack, name, statistic)
    return Expression(f"SUM([{', '.join(inputs)}])", label, inputs)


def cache_max(stack: MonitoredStack, name: str, statistic: str, label: str) -> Expression:
    inputs = cache_metrics(stack, name, statistic)
    return Expression(f"MAX([{', '.join(inputs)}])", label, inputs)
