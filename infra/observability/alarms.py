"""The alarms for people: what each watches, from plain values, and when it fires."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from infra.cloudwatch.alarm import Watched, alarm_queries
from infra.cloudwatch.load_balancer import MIN_REQUESTS_FOR_ERROR_RATE
from infra.cloudwatch.metrics import MINUTE, AlarmQuery, Expression
from infra.observability.config import AlarmsConfig
from infra.observability.metrics import (
    GIB,
    SUSTAINED_MINUTES,
    MonitoredStack,
    app_metric,
    beat_period_seconds,
    beat_tasks,
    cache_max,
    cache_sum,
    database_metric,
    dead_letters_waiting,
    deployment_rule_metric,
    web_5xx_rate,
    web_targets_metric,
)
from queuemetrics import schema

WEB_AT_MAX_MINUTES = 15
# Retries span outages; people hear of one that lasts this long (a minimum above 0 all along).
MAIL_SERVER_ALARM_MINUTES = 30
MAIL_SERVER_PERIOD = 5 * MINUTE


@dataclass(frozen=True)
class AlarmRule:
    """One alarm for people: what it watches (built from the stack's names) and when it fires."""

    key: str  # the alarm's resource name suffix
    description: str
    watches: Callable[[MonitoredStack], Watched]
    comparison: str
    threshold: float
    evaluation_periods: int
    datapoints_to_alarm: int
    treat_missing_data: str

    def metric_queries(self, stack: MonitoredStack) -> list[AlarmQuery]:
        """The MetricAlarm's `metric_queries` for this stack; exactly one returns data."""
        return alarm_queries(self.watches(stack))


def alarm_rules(
    thresholds: AlarmsConfig,
    db_allocated_storage_gib: int,
    publish_interval_seconds: int,
    web_serves_traffic: bool,
    beat_pool: str | None,
    web_max_count: int | None = None,
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
            watches=lambda stack: web_targets_metric(
                stack, "UnHealthyHostCount", "Maximum", "unhealthy targets", "MAX"
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
                watches=lambda stack: web_targets_metric(
                    stack, "HealthyHostCount", "Minimum", "healthy targets", "SUM"
                ),
                comparison="LessThanThreshold",
                threshold=1,
                evaluation_periods=3,
                datapoints_to_alarm=3,
                treat_missing_data="breaching",
            )
        )
    if web_max_count is not None:
        rules.append(
            AlarmRule(
                key="web-at-max-tasks",
                description=(
                    f"The web service has run at its maximum of {web_max_count} tasks for "
                    f"{WEB_AT_MAX_MINUTES} minutes: autoscaling cannot add more. Raise webMaxCount, "
                    "or a bigger task size (webCpu, webMemory)."
                ),
                # The larger of two groups: both revisions of a deployment are healthy for a while.
                watches=lambda stack: web_targets_metric(
                    stack, "HealthyHostCount", "Minimum", "healthy targets", "MAX"
                ),
                comparison="GreaterThanOrEqualToThreshold",
                threshold=web_max_count,
                # Longer than a deployment, during which old and new tasks are both healthy.
                evaluation_periods=WEB_AT_MAX_MINUTES,
                datapoints_to_alarm=WEB_AT_MAX_MINUTES,
                treat_missing_data="notBreaching",
            )
        )
    rules += _welcome_email_rules()
    rules += _dead_letter_rules()
    rules += _notification_path_rules()
    if beat_pool is not None:
        period = beat_period_seconds(publish_interval_seconds)
        periods = max(1, math.ceil(thresholds.beat_minutes * MINUTE / period))
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


def _welcome_email_rules() -> list[AlarmRule]:
    """Welcome emails that failed for good, and a mail server that keeps refusing them."""
    return [
        AlarmRule(
            key="welcome-emails-failed",
            description=(
                "Welcome emails failed for good (a permanent rejection, or the retry window ended). List "
                "and re-send them: python -m infra.ops manage <stack> -- failed_welcome_emails --resend"
            ),
            watches=lambda stack: app_metric(
                stack, schema.WELCOME_EMAILS_FAILED, "Maximum", "failed welcome emails"
            ),
            comparison="GreaterThanThreshold",
            threshold=0,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            treat_missing_data="notBreaching",  # a silent publisher has its own alarm
        ),
        AlarmRule(
            key="mail-server-refusing",
            description=(
                f"Welcome emails have been waiting for a retry for {MAIL_SERVER_ALARM_MINUTES} minutes: "
                "the mail server refuses or is down. They are retried until welcomeEmailRetryWindowSeconds."
            ),
            watches=lambda stack: app_metric(
                stack,
                schema.WELCOME_EMAILS_RETRYING,
                "Minimum",
                "welcome emails retrying",
                MAIL_SERVER_PERIOD,
            ),
            comparison="GreaterThanThreshold",
            threshold=0,
            evaluation_periods=MAIL_SERVER_ALARM_MINUTES * MINUTE // MAIL_SERVER_PERIOD,
            datapoints_to_alarm=MAIL_SERVER_ALARM_MINUTES * MINUTE // MAIL_SERVER_PERIOD,
            treat_missing_data="notBreaching",
        ),
    ]


def _dead_letter_rules() -> list[AlarmRule]:
    """Task messages the workers gave up on: one is enough to tell people (core.dead_letters)."""
    return [
        AlarmRule(
            key="task-dead-letters",
            description=(
                "Task messages wait in the dead-letter list: delivered too often without finishing "
                "(killed, out of memory), too large, or not messages at all. List, replay or drop them: "
                "python -m infra.ops dead-letters <stack> list"
            ),
            watches=lambda stack: app_metric(stack, schema.DEAD_LETTERS, "Maximum", "dead letters"),
            comparison="GreaterThanThreshold",
            threshold=0,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            treat_missing_data="notBreaching",  # a silent publisher has its own alarm
        ),
    ]


def _notification_path_rules() -> list[AlarmRule]:
    """The deployment-event path itself: EventBridge failing to deliver to the topic (a key or topic
    policy that refuses it) would otherwise lose every deployment mail silently. These alarms reach
    people through CloudWatch's own permission on the topic, not EventBridge's."""
    return [
        AlarmRule(
            key="deployment-events-failing",
            description=(
                "EventBridge could not deliver ECS deployment events to the alarm topic: deployment "
                "failures and rollbacks are not reaching people. Check the topic's key and access "
                "policies; the undelivered events wait in the deployment dead-letter queue."
            ),
            watches=lambda stack: deployment_rule_metric(stack, "FailedInvocations", "failed deliveries"),
            comparison="GreaterThanThreshold",
            threshold=0,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            treat_missing_data="notBreaching",  # no event, no failure
        ),
        AlarmRule(
            key="deployment-events-undelivered",
            description=(
                "Deployment events wait in the dead-letter queue: EventBridge gave up delivering them "
                "to the alarm topic. Read them there (aws sqs receive-message), then fix the topic."
            ),
            watches=dead_letters_waiting,
            comparison="GreaterThanThreshold",
            threshold=0,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            treat_missing_data="notBreaching",
        ),
    ]


def _deviation_from_one(count: Expression) -> Expression:
    return Expression(
        text="ABS(count - 1)",
        label=f"{count.label}, distance from 1",
        inputs=count.inputs,
        steps={**count.steps, "count": count.text},
    )
