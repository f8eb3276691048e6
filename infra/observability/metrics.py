"""The metrics the stack watches, defined once for the dashboard, the alarms and the scaling policies.

Everything here is pure and built from plain values. One set of metric definitions feeds the
dashboard and the alarms, so a graph and the alarm beside it always read the same series, and
`Metric.alarm_query` is the one builder of CloudWatch alarm metric queries. Queue
metric names and dimensions come from the publisher's schema (app/queuemetrics/schema.py); AWS
metrics are addressed the way their services publish them:

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
from dataclasses import dataclass, field
from typing import Any

from pulumi_aws.cloudwatch import MetricAlarmMetricQueryArgsDict

from queuemetrics import schema

ALB_NAMESPACE = "AWS/ApplicationELB"
RDS_NAMESPACE = "AWS/RDS"
ECS_NAMESPACE = "AWS/ECS"
WAF_NAMESPACE = "AWS/WAFV2"
CACHE_NAMESPACE = "AWS/ElastiCache"

# One entry of a CloudWatch alarm's `metric_queries`, as the AWS provider types it.
AlarmQuery = MetricAlarmMetricQueryArgsDict
MINUTE = 60
GIB = 2**30
# Below this many requests a minute, a 5xx rate is noise (one error in two requests is 50 %).
MIN_REQUESTS_FOR_ERROR_RATE = 10
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
    min_tasks: int
    max_tasks: int
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


@dataclass(frozen=True)
class Metric:
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    statistic: str
    label: str
    period: int = MINUTE

    def alarm_query(self, query_id: str, return_data: bool = False) -> AlarmQuery:
        """One entry of a MetricAlarm's `metric_queries`: the alarmed value, or an expression input."""
        return {
            "id": query_id,
            "label": self.label,
            "return_data": return_data,
            "metric": {
                "namespace": self.namespace,
                "metric_name": self.name,
                "dimensions": dict(self.dimensions),
                "stat": self.statistic,
                "period": self.period,
            },
        }

    def widget_row(self, query_id: str | None = None) -> list[Any]:
        """One row of a dashboard widget's `metrics`; with an id it only feeds an expression."""
        options: dict[str, Any] = {"stat": self.statistic, "label": self.label, "period": self.period}
        if query_id:
            options.update(id=query_id, visible=False)
        return [self.namespace, self.name, *(part for pair in self.dimensions for part in pair), options]


@dataclass(frozen=True)
class Expression:
    """Metric math over named metrics; `inputs` maps each id used in `text` to its metric."""

    text: str
    label: str
    inputs: Mapping[str, Metric]
    steps: Mapping[str, str] = field(default_factory=dict)  # intermediate expressions, by id

    def alarm_queries(self) -> list[AlarmQuery]:
        steps: list[AlarmQuery] = [
            {"id": step_id, "expression": text, "label": step_id, "return_data": False}
            for step_id, text in self.steps.items()
        ]
        result: AlarmQuery = {
            "id": "result",
            "expression": self.text,
            "label": self.label,
            "return_data": True,
        }
        return [*(metric.alarm_query(query_id) for query_id, metric in self.inputs.items()), *steps, result]

    def widget_rows(self) -> list[list[Any]]:
        return [
            *(metric.widget_row(query_id) for query_id, metric in self.inputs.items()),
            *(
                [{"expression": text, "id": step_id, "visible": False}]
                for step_id, text in self.steps.items()
            ),
            [{"expression": self.text, "label": self.label, "id": "result"}],
        ]


# --- The metrics ------------------------------------------------------------------------------------


def alb_metric(stack: MonitoredStack, name: str, statistic: str, label: str) -> Metric:
    return Metric(ALB_NAMESPACE, name, (("LoadBalancer", stack.load_balancer),), statistic, label)


def target_group_metric(stack: MonitoredStack, name: str, statistic: str, label: str) -> Metric:
    dimensions = (("TargetGroup", stack.target_group), ("LoadBalancer", stack.load_balancer))
    return Metric(ALB_NAMESPACE, name, dimensions, statistic, label)


def web_service_metric(web: WebTier, name: str, statistic: str, label: str) -> Metric:
    dimensions = (("ClusterName", web.cluster), ("ServiceName", web.service))
    return Metric(ECS_NAMESPACE, name, dimensions, statistic, label)


def waf_metric(stack: MonitoredStack, web_acl: str, name: str, rule: str, label: str) -> Metric:
    """A WAF metric of one rule (by its metric name), or of the whole web ACL with rule ALL."""
    dimensions = (("WebACL", web_acl), ("Region", stack.region), ("Rule", rule))
    return Metric(WAF_NAMESPACE, name, dimensions, "Sum", label)


def database_metric(stack: MonitoredStack, name: str, statistic: str, label: str) -> Metric:
    return Metric(RDS_NAMESPACE, name, (("DBInstanceIdentifier", stack.db_instance),), statistic, label)


def cache_metrics(stack: MonitoredStack, name: str, statistic: str) -> dict[str, Metric]:
    """One metric per member cluster, keyed by a query id (primary and replicas swap on failover)."""
    return {
        f"node{index}": Metric(CACHE_NAMESPACE, name, (("CacheClusterId", cluster),), statistic, cluster)
        for index, cluster in enumerate(stack.cache_clusters)
    }


def queue_metric(
    namespace: str,
    definition: schema.MetricDefinition,
    statistic: str,
    label: str,
    pool: str,
    queue: str | None = None,
    period: int = MINUTE,
) -> Metric:
    """A metric the queue-metrics publisher writes for `pool` (and `queue`), in the stack's namespace."""
    dimensions = tuple(schema.dimensions(definition, pool, queue).items())
    return Metric(namespace, definition.name, dimensions, statistic, label, period)


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
    """5xx answers (from the app and from the ALB itself) as a percentage of all requests."""
    return Expression(
        text=(
            f"IF(requests >= {MIN_REQUESTS_FOR_ERROR_RATE}, "
            "100 * (FILL(app5xx, 0) + FILL(alb5xx, 0)) / requests, 0)"
        ),
        label="5xx % of requests",
        inputs={
            "requests": alb_metric(stack, "RequestCount", "Sum", "requests"),
            "app5xx": alb_metric(stack, "HTTPCode_Target_5XX_Count", "Sum", "5xx from the app"),
            "alb5xx": alb_metric(stack, "HTTPCode_ELB_5XX_Count", "Sum", "5xx from the ALB"),
        },
    )


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
