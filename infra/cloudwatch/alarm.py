"""The one way the program declares a CloudWatch alarm.

An `AlarmSpec` says what an alarm watches (a `Metric` or an `Expression`) and when it fires;
`metric_alarm` declares it, always as `metric_queries` (a single metric is one query that returns
data), so every alarm of the stack has one shape, whoever declares it: the alarms for people, a
worker pool's scaling alarms, the deployment alarms of a web release.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.cloudwatch.metrics import AlarmQuery, Expression, Metric

Watched = Metric | Expression


@dataclass(frozen=True)
class AlarmSpec:
    description: str
    # What the alarm reads; an Output when it names what AWS names only at deploy time (an ALB).
    watches: Watched | pulumi.Output[Watched]
    comparison: str  # PutMetricAlarm ComparisonOperator
    threshold: float
    evaluation_periods: int
    datapoints_to_alarm: int
    treat_missing_data: str  # breaching, notBreaching, ignore or missing


def alarm_queries(watched: Watched) -> list[AlarmQuery]:
    """An alarm's `metric_queries`; exactly one returns data."""
    if isinstance(watched, Metric):
        return [watched.alarm_query("value", return_data=True)]
    return watched.alarm_queries()


def metric_alarm(
    name: str,
    spec: AlarmSpec,
    actions: Sequence[pulumi.Input[str]],
    opts: pulumi.ResourceOptions,
    *,
    ok_actions: bool = True,
) -> aws.cloudwatch.MetricAlarm:
    """Declares `spec`; `actions` run on ALARM, and on OK unless `ok_actions` is false (scaling
    policies act on ALARM only; people also want to hear that it is over)."""
    return aws.cloudwatch.MetricAlarm(
        name,
        alarm_description=spec.description,
        metric_queries=spec.watches.apply(alarm_queries)
        if isinstance(spec.watches, pulumi.Output)
        else alarm_queries(spec.watches),
        comparison_operator=spec.comparison,
        threshold=spec.threshold,
        evaluation_periods=spec.evaluation_periods,
        datapoints_to_alarm=spec.datapoints_to_alarm,
        treat_missing_data=spec.treat_missing_data,
        alarm_actions=list(actions),
        ok_actions=list(actions) if ok_actions else [],
        opts=opts,
    )
