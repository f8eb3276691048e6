"""What the stack watches: the dashboard body, the alarms for people, and the deployment-event rule.

Everything here is pure and built from plain values. One set of metric definitions feeds both the
dashboard and the alarms, so a graph and the alarm beside it always read the same series. Queue
metric names and dimensions come from the publisher's schema (app/queuemetrics/schema.py); AWS
metrics are addressed the way their services publish them:

- AWS/ApplicationELB by `LoadBalancer` (the ALB's ARN suffix), target metrics also by `TargetGroup`;
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

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from infra.scaling import schema

ALB_NAMESPACE = "AWS/ApplicationELB"
RDS_NAMESPACE = "AWS/RDS"
CACHE_NAMESPACE = "AWS/ElastiCache"

MINUTE = 60
GIB = 2**30
# Below this many requests a minute, a 5xx rate is noise (one error in two requests is 50 %).
MIN_REQUESTS_FOR_ERROR_RATE = 10
# Beat is counted from publisher datapoints; a period holding at least this many of them per
# Beat task keeps the count within +-25 % when a tick lands just inside or outside the period.
BEAT_SAMPLES_PER_PERIOD = 4
# How many minutes a condition must hold before people are told (deploys cause short blips).
SUSTAINED_MINUTES = 5
# ECS reports a failed deployment, and a circuit-breaker rollback as a new deployment whose
# reason starts with this text.
ROLLBACK_REASON_PREFIX = "ECS deployment circuit breaker: rolling back"

DASHBOARD_WIDTH = 24  # CloudWatch dashboards are 24 grid units wide
WIDGET_WIDTH, WIDGET_HEIGHT = 8, 6


@dataclass(frozen=True)
class AlarmThresholds:
    """The numbers people choose (stack config); everything else about the alarms is fixed."""

    web_5xx_percent: int
    db_free_storage_percent: int
    redis_memory_percent: int
    beat_alarm_minutes: int
    queue_age_seconds: int  # the autoscaling component's alarm; drawn on the dashboard


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


@dataclass(frozen=True)
class Metric:
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    statistic: str
    label: str
    period: int = MINUTE

    def alarm_query(self, query_id: str, return_data: bool = False) -> dict[str, Any]:
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

    def alarm_queries(self) -> list[dict[str, Any]]:
        return [
            *(metric.alarm_query(query_id) for query_id, metric in self.inputs.items()),
            *(
                {"id": step_id, "expression": text, "label": step_id, "return_data": False}
                for step_id, text in self.steps.items()
            ),
            {"id": "result", "expression": self.text, "label": self.label, "return_data": True},
        ]

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


def database_metric(stack: MonitoredStack, name: str, statistic: str, label: str) -> Metric:
    return Metric(RDS_NAMESPACE, name, (("DBInstanceIdentifier", stack.db_instance),), statistic, label)


def cache_metrics(stack: MonitoredStack, name: str, statistic: str) -> dict[str, Metric]:
    """One metric per member cluster, keyed by a query id (primary and replicas swap on failover)."""
    return {
        f"node{index}": Metric(CACHE_NAMESPACE, name, (("CacheClusterId", cluster),), statistic, cluster)
        for index, cluster in enumerate(stack.cache_clusters)
    }


def queue_metric(
    stack: MonitoredStack,
    definition: schema.MetricDefinition,
    statistic: str,
    label: str,
    pool: str,
    queue: str | None = None,
    period: int = MINUTE,
) -> Metric:
    dimensions = tuple(schema.dimensions(definition, pool, queue).items())
    return Metric(stack.queue_namespace, definition.name, dimensions, statistic, label, period)


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
        stack, schema.POOL_BACKLOG, "SampleCount", "publisher datapoints", beat_pool, period=period
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


# --- Alarms -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlarmRule:
    """One alarm for people: what it watches (built from the stack's names) and when it fires."""

    key: str  # the alarm's resource name suffix
    description: str
    watches: Callable[[MonitoredStack], Metric | Expression]
    comparison: str
    threshold: float
    evaluation_periods: int
    datapoints_to_alarm: int
    treat_missing_data: str

    def metric_queries(self, stack: MonitoredStack) -> list[dict[str, Any]]:
        """The MetricAlarm's `metric_queries` for this stack; exactly one returns data."""
        watched = self.watches(stack)
        if isinstance(watched, Metric):
            return [watched.alarm_query("value", return_data=True)]
        return watched.alarm_queries()


def alarm_rules(
    thresholds: AlarmThresholds,
    db_allocated_storage_gib: int,
    publish_interval_seconds: int,
    web_serves_traffic: bool,
    beat_pool: str | None,
) -> list[AlarmRule]:
    """The alarms the stack declares. Which exist depends only on plain config values."""
    rules = [
        AlarmRule(
            key="web-5xx",
            description=(
                f"More than {thresholds.web_5xx_percent} % of web requests answered 5xx in 3 of the last "
                f"{SUSTAINED_MINUTES} minutes (counted from {MIN_REQUESTS_FOR_ERROR_RATE} requests a minute)."
            ),
            watches=web_5xx_rate,
            comparison="GreaterThanThreshold",
            threshold=thresholds.web_5xx_percent,
            evaluation_periods=SUSTAINED_MINUTES,
            datapoints_to_alarm=3,
            treat_missing_data="notBreaching",  # no traffic is not an error rate
        ),
        AlarmRule(
            key="web-unhealthy-targets",
            description=(
                f"Web tasks have failed the ALB health check (/healthz) for {SUSTAINED_MINUTES} minutes."
            ),
            watches=lambda stack: target_group_metric(
                stack, "UnHealthyHostCount", "Maximum", "unhealthy targets"
            ),
            comparison="GreaterThanThreshold",
            threshold=0,
            evaluation_periods=SUSTAINED_MINUTES,
            datapoints_to_alarm=SUSTAINED_MINUTES,
            treat_missing_data="notBreaching",
        ),
        AlarmRule(
            key="db-free-storage",
            description=(
                f"PostgreSQL has less than {thresholds.db_free_storage_percent} % of its "
                f"{db_allocated_storage_gib} GiB free; at zero it stops accepting writes."
            ),
            watches=lambda stack: database_metric(
                stack, "FreeStorageSpace", "Minimum", "free storage (bytes)"
            ),
            comparison="LessThanThreshold",
            threshold=db_allocated_storage_gib * GIB * thresholds.db_free_storage_percent / 100,
            evaluation_periods=SUSTAINED_MINUTES,
            datapoints_to_alarm=SUSTAINED_MINUTES,
            treat_missing_data="missing",
        ),
        AlarmRule(
            key="broker-evictions",
            description=(
                "The Redis broker evicted keys: an evicting broker drops queued tasks. Check that "
                "maxmemory-policy is noeviction and that the node has room."
            ),
            watches=lambda stack: cache_sum(stack, "Evictions", "Sum", "evicted keys"),
            comparison="GreaterThanThreshold",
            threshold=0,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            treat_missing_data="notBreaching",
        ),
        AlarmRule(
            key="broker-memory",
            description=(
                f"The Redis broker has used more than {thresholds.redis_memory_percent} % of its memory "
                f"for {SUSTAINED_MINUTES} minutes; when full it refuses new tasks (noeviction)."
            ),
            watches=lambda stack: cache_max(
                stack, "DatabaseMemoryUsagePercentage", "Maximum", "memory used (%)"
            ),
            comparison="GreaterThanThreshold",
            threshold=thresholds.redis_memory_percent,
            evaluation_periods=SUSTAINED_MINUTES,
            datapoints_to_alarm=SUSTAINED_MINUTES,
            treat_missing_data="missing",
        ),
    ]
    if web_serves_traffic:
        rules.append(
            AlarmRule(
                key="web-no-healthy-targets",
                description="No web task has passed the ALB health check for 3 minutes: the site is down.",
                watches=lambda stack: target_group_metric(
                    stack, "HealthyHostCount", "Minimum", "healthy targets"
                ),
                comparison="LessThanThreshold",
                threshold=1,
                evaluation_periods=3,
                datapoints_to_alarm=3,
                treat_missing_data="breaching",
            )
        )
    if beat_pool is not None:
        period = beat_period_seconds(publish_interval_seconds)
        periods = max(1, math.ceil(thresholds.beat_alarm_minutes * MINUTE / period))
        rules.append(
            AlarmRule(
                key="beat-count",
                description=(
                    f"Not exactly one Celery Beat task has run for {periods * period // MINUTE} minutes: "
                    "with none, periodic tasks stop; with two, they run twice. Counted from the "
                    "queue-metrics publisher beside Beat: a stopped publisher, or one that cannot reach "
                    "the broker, also shows as no Beat (and the publisher-silent alarm fires too)."
                ),
                watches=lambda stack: _deviation_from_one(beat_tasks(stack, beat_pool)),
                comparison="GreaterThanOrEqualToThreshold",
                threshold=0.5,  # the count is off by at least half a task: 0 or 2, never jitter
                evaluation_periods=periods,
                datapoints_to_alarm=periods,
                treat_missing_data="breaching",  # no datapoints at all: no publisher, so no Beat
            )
        )
    return rules


def _deviation_from_one(count: Expression) -> Expression:
    return Expression(
        text="ABS(count - 1)",
        label=f"{count.label}, distance from 1",
        inputs=count.inputs,
        steps={**count.steps, "count": count.text},
    )


# --- Dashboard ----------------------------------------------------------------------------------------


def dashboard_body(stack: MonitoredStack, thresholds: AlarmThresholds) -> str:
    """The CloudWatch dashboard JSON: queues and workers per pool, web, database, broker, Beat."""
    widgets: list[dict[str, Any]] = []
    for pool, queues in stack.pools.items():
        widgets += [
            _widget(
                stack,
                f"Pool {pool}: waiting messages",
                [
                    queue_metric(stack, schema.QUEUE_WAITING, "Maximum", queue, pool, queue).widget_row()
                    for queue in queues
                ],
            ),
            _widget(
                stack,
                f"Pool {pool}: oldest message age (s)",
                [
                    queue_metric(stack, schema.QUEUE_OLDEST_AGE, "Maximum", queue, pool, queue).widget_row()
                    for queue in queues
                ],
                annotation=("alarm", thresholds.queue_age_seconds),
            ),
            _widget(
                stack,
                f"Pool {pool}: workers",
                [
                    queue_metric(stack, schema.POOL_DESIRED_WORKERS, "Maximum", "desired", pool).widget_row(),
                    queue_metric(stack, schema.POOL_RUNNING_WORKERS, "Maximum", "running", pool).widget_row(),
                ],
            ),
        ]
    widgets += [
        _widget(
            stack,
            "Web: requests and 5xx",
            [
                alb_metric(stack, "RequestCount", "Sum", "requests").widget_row(),
                alb_metric(stack, "HTTPCode_Target_5XX_Count", "Sum", "5xx from the app").widget_row(),
                alb_metric(stack, "HTTPCode_ELB_5XX_Count", "Sum", "5xx from the ALB").widget_row(),
            ],
        ),
        _widget(
            stack,
            "Web: 5xx rate (%)",
            web_5xx_rate(stack).widget_rows(),
            annotation=("alarm", thresholds.web_5xx_percent),
        ),
        _widget(
            stack,
            "Web: response time (s)",
            [
                alb_metric(stack, "TargetResponseTime", "p50", "p50").widget_row(),
                alb_metric(stack, "TargetResponseTime", "p99", "p99").widget_row(),
            ],
        ),
        _widget(
            stack,
            "Web: targets",
            [
                target_group_metric(stack, "HealthyHostCount", "Minimum", "healthy").widget_row(),
                target_group_metric(stack, "UnHealthyHostCount", "Maximum", "unhealthy").widget_row(),
            ],
        ),
        _widget(
            stack,
            "PostgreSQL: CPU (%)",
            [database_metric(stack, "CPUUtilization", "Average", "CPU").widget_row()],
        ),
        _widget(
            stack,
            "PostgreSQL: connections",
            [database_metric(stack, "DatabaseConnections", "Maximum", "connections").widget_row()],
        ),
        _widget(
            stack,
            "PostgreSQL: free storage (bytes)",
            [database_metric(stack, "FreeStorageSpace", "Minimum", "free storage").widget_row()],
            annotation=(
                "alarm",
                stack.db_allocated_storage_gib * GIB * thresholds.db_free_storage_percent / 100,
            ),
        ),
        _widget(
            stack,
            "Broker: memory used (%)",
            [
                metric.widget_row()
                for metric in cache_metrics(stack, "DatabaseMemoryUsagePercentage", "Maximum").values()
            ],
            annotation=("alarm", thresholds.redis_memory_percent),
        ),
        _widget(
            stack,
            "Broker: evicted keys (lost tasks)",
            [m.widget_row() for m in cache_metrics(stack, "Evictions", "Sum").values()],
        ),
        _widget(
            stack,
            "Broker: client connections",
            [m.widget_row() for m in cache_metrics(stack, "CurrConnections", "Maximum").values()],
        ),
    ]
    if stack.beat_pool is not None:
        widgets.append(
            _widget(stack, "Celery Beat: tasks running", beat_tasks(stack, stack.beat_pool).widget_rows())
        )
    return json.dumps({"widgets": _laid_out(widgets)})


def _widget(
    stack: MonitoredStack,
    title: str,
    rows: list[list[Any]],
    annotation: tuple[str, float] | None = None,
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "title": title,
        "region": stack.region,
        "view": "timeSeries",
        "stacked": False,
        "period": MINUTE,
        "metrics": rows,
    }
    if annotation:
        label, value = annotation
        properties["annotations"] = {"horizontal": [{"label": label, "value": value}]}
    return {"type": "metric", "width": WIDGET_WIDTH, "height": WIDGET_HEIGHT, "properties": properties}


def _laid_out(widgets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Three widgets a row, in order."""
    per_row = DASHBOARD_WIDTH // WIDGET_WIDTH
    return [
        {**widget, "x": (index % per_row) * WIDGET_WIDTH, "y": (index // per_row) * WIDGET_HEIGHT}
        for index, widget in enumerate(widgets)
    ]


# --- Deployment events and the topic policy -----------------------------------------------------------


def service_arn(cluster_arn: str, service_name: str) -> str:
    """A service's ARN in the long format ECS uses: arn:...:service/<cluster>/<service>."""
    prefix, cluster = cluster_arn.split(":cluster/", 1)
    return f"{prefix}:service/{cluster}/{service_name}"


def deployment_events_pattern(service_arns: Sequence[str]) -> str:
    """EventBridge pattern: failed deployments and circuit-breaker rollbacks of these services."""
    return json.dumps(
        {
            "source": ["aws.ecs"],
            "detail-type": ["ECS Deployment State Change"],
            "resources": sorted(service_arns),
            "detail": {
                "$or": [
                    {"eventName": ["SERVICE_DEPLOYMENT_FAILED"]},
                    {
                        "eventName": ["SERVICE_DEPLOYMENT_IN_PROGRESS"],
                        "reason": [{"prefix": ROLLBACK_REASON_PREFIX}],
                    },
                ]
            },
        }
    )


# The e-mail people receive for a deployment event, filled in by EventBridge.
DEPLOYMENT_MESSAGE_PATHS = {
    "service": "$.resources[0]",
    "event": "$.detail.eventName",
    "reason": "$.detail.reason",
    "time": "$.time",
}
DEPLOYMENT_MESSAGE_TEMPLATE = '"<time> <service>: <event>. <reason>"'


def alarm_topic_policy(topic_arn: str, account_id: str, region: str, event_rule_arn: str) -> str:
    """CloudWatch alarms of this account and the deployment-event rule may publish; no one else."""
    partition = topic_arn.split(":")[1]
    alarm_arns = f"arn:{partition}:cloudwatch:{region}:{account_id}:alarm:*"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AlarmsPublish",
                    "Effect": "Allow",
                    "Principal": {"Service": "cloudwatch.amazonaws.com"},
                    "Action": "sns:Publish",
                    "Resource": topic_arn,
                    "Condition": {
                        "StringEquals": {"aws:SourceAccount": account_id},
                        "ArnLike": {"aws:SourceArn": alarm_arns},
                    },
                },
                {
                    "Sid": "DeploymentEventsPublish",
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sns:Publish",
                    "Resource": topic_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": event_rule_arn}},
                },
            ],
        }
    )
