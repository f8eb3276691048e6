"""The CloudWatch dashboard of a stack: queues and workers per pool, web, database, broker, Beat."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from infra.cloudwatch.metrics import MINUTE, queue_metric
from infra.observability.config import AlarmsConfig
from infra.observability.metrics import (
    GIB,
    MonitoredStack,
    WebTier,
    alb_metric,
    app_metric,
    beat_tasks,
    cache_metrics,
    database_metric,
    dead_letters_waiting,
    deployment_rule_metric,
    target_group_metric,
    waf_metric,
    web_5xx_rate,
    web_service_metric,
)
from queuemetrics import schema

DASHBOARD_WIDTH = 24  # CloudWatch dashboards are 24 grid units wide
WIDGET_WIDTH, WIDGET_HEIGHT = 8, 6


def dashboard_body(stack: MonitoredStack, thresholds: AlarmsConfig, queue_age_alarm_seconds: int) -> str:
    """The CloudWatch dashboard JSON: queues and workers per pool, web, database, broker, Beat."""
    widgets: list[dict[str, Any]] = []
    for pool, queues in stack.pools.items():
        widgets += [
            _widget(
                stack,
                f"Pool {pool}: waiting messages",
                [
                    queue_metric(
                        stack.queue_namespace, schema.QUEUE_WAITING, "Maximum", queue, pool, queue
                    ).widget_row()
                    for queue in queues
                ],
            ),
            _widget(
                stack,
                f"Pool {pool}: oldest message age (s)",
                [
                    queue_metric(
                        stack.queue_namespace, schema.QUEUE_OLDEST_AGE, "Maximum", queue, pool, queue
                    ).widget_row()
                    for queue in queues
                ],
                annotation=("alarm", queue_age_alarm_seconds),
            ),
            _widget(
                stack,
                f"Pool {pool}: workers",
                [
                    queue_metric(
                        stack.queue_namespace, schema.POOL_DESIRED_WORKERS, "Maximum", "desired", pool
                    ).widget_row(),
                    queue_metric(
                        stack.queue_namespace, schema.POOL_RUNNING_WORKERS, "Maximum", "running", pool
                    ).widget_row(),
                ],
            ),
            _widget(
                stack,
                f"Pool {pool}: measured task run time and wait (s)",
                [
                    queue_metric(
                        stack.queue_namespace, schema.POOL_TASK_RUN_SECONDS, "Average", "run time", pool
                    ).widget_row(),
                    queue_metric(
                        stack.queue_namespace, schema.POOL_QUEUE_WAIT_SECONDS, "Average", "wait", pool
                    ).widget_row(),
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
                target_group_metric(
                    stack, name, statistic, f"{label}{group_label(stack, index)}", group
                ).widget_row()
                for name, statistic, label in (
                    ("HealthyHostCount", "Minimum", "healthy"),
                    ("UnHealthyHostCount", "Maximum", "unhealthy"),
                )
                for index, group in enumerate(stack.target_groups)
            ],
            annotations=[("min tasks", stack.web.min_count), ("max tasks", stack.web.max_count)]
            if stack.web
            else (),
        ),
    ]
    if stack.web is not None:
        widgets += _web_tier_widgets(stack, stack.web)
    widgets += [
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
    widgets.append(
        _widget(
            stack,
            "Welcome emails: retrying and failed for good",
            [
                app_metric(stack, schema.WELCOME_EMAILS_RETRYING, "Maximum", "retrying").widget_row(),
                app_metric(stack, schema.WELCOME_EMAILS_FAILED, "Maximum", "failed").widget_row(),
            ],
        )
    )
    widgets.append(
        _widget(
            stack,
            "Deployment events: failed deliveries and undelivered",
            [
                deployment_rule_metric(stack, "FailedInvocations", "failed deliveries").widget_row(),
                dead_letters_waiting(stack).widget_row(),
            ],
        )
    )
    if stack.beat_pool is not None:
        widgets.append(
            _widget(stack, "Celery Beat: tasks running", beat_tasks(stack, stack.beat_pool).widget_rows())
        )
    if stack.schedule_alarms:
        widgets.append(_alarm_widget(stack, "Beat schedule entries: late or failing", stack.schedule_alarms))
    return json.dumps({"widgets": _laid_out(widgets)})


def _alarm_widget(stack: MonitoredStack, title: str, alarm_arns: Sequence[str]) -> dict[str, Any]:
    """The state of each alarm (CloudWatch dashboard body structure, widget type `alarm`)."""
    properties = {
        "title": title,
        "region": stack.region,
        "alarms": list(alarm_arns),
        "sortBy": "stateUpdatedTimestamp",
    }
    return {"type": "alarm", "width": WIDGET_WIDTH, "height": WIDGET_HEIGHT, "properties": properties}


def _web_tier_widgets(stack: MonitoredStack, web: WebTier) -> list[dict[str, Any]]:
    """What web autoscaling tracks, against its targets; and what the firewall lets through."""
    widgets = [
        _widget(
            stack,
            "Web: requests per task (per minute)",
            [
                target_group_metric(
                    stack,
                    "RequestCountPerTarget",
                    "Sum",
                    f"requests per task{group_label(stack, index)}",
                    group,
                ).widget_row()
                for index, group in enumerate(stack.target_groups)
            ],
            annotation=("scaling target", web.requests_per_task),
        ),
        _widget(
            stack,
            "Web: CPU (%)",
            [web_service_metric(web, "CPUUtilization", "Average", "average CPU").widget_row()],
            annotation=("scaling target", web.cpu_percent),
        ),
    ]
    if web.web_acl is not None:
        acl = web.web_acl
        widgets += [
            _widget(
                stack,
                "Firewall: requests",
                [
                    waf_metric(stack, acl, "AllowedRequests", "ALL", "allowed").widget_row(),
                    waf_metric(stack, acl, "BlockedRequests", "ALL", "blocked").widget_row(),
                ],
            ),
            _widget(
                stack,
                "Firewall: blocked (counted) by rule",
                [waf_metric(stack, acl, "BlockedRequests", rule, rule).widget_row() for rule in web.waf_rules]
                + [
                    waf_metric(stack, acl, "CountedRequests", rule, f"{rule} (counted)").widget_row()
                    for rule in web.waf_counting_rules
                ],
            ),
        ]
    return widgets


def group_label(stack: MonitoredStack, index: int) -> str:
    """Which of the two target groups a line is, when web has two."""
    return f" (group {index + 1})" if len(stack.target_groups) > 1 else ""


def _widget(
    stack: MonitoredStack,
    title: str,
    rows: list[list[Any]],
    annotation: tuple[str, float] | None = None,
    annotations: Sequence[tuple[str, float]] = (),
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "title": title,
        "region": stack.region,
        "view": "timeSeries",
        "stacked": False,
        "period": MINUTE,
        "metrics": rows,
    }
    lines = [*([annotation] if annotation else []), *annotations]
    if lines:
        horizontal = [{"label": label, "value": value} for label, value in lines]
        properties["annotations"] = {"horizontal": horizontal}
    return {"type": "metric", "width": WIDGET_WIDTH, "height": WIDGET_HEIGHT, "properties": properties}


def _laid_out(widgets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Three widgets a row, in order."""
    per_row = DASHBOARD_WIDTH // WIDGET_WIDTH
    return [
        {**widget, "x": (index % per_row) * WIDGET_WIDTH, "y": (index // per_row) * WIDGET_HEIGHT}
        for index, widget in enumerate(widgets)
    ]
