"""CloudWatch metric queries, built once for alarms, dashboards and scaling policies alike.

A `Metric` is one series (namespace, name, dimensions, statistic, period); an `Expression` is metric
math over named metrics. `Metric.alarm_query`/`Expression.alarm_queries` are the one builder of an
alarm's `metric_queries`, `widget_row(s)` of a dashboard widget's `metrics`, so a graph and the alarm
beside it always read the same series. Numbers in metric math text go through
`infra.cloudwatch.numbers.math_number`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pulumi_aws.cloudwatch import MetricAlarmMetricQueryArgsDict

from queuemetrics import schema

# One entry of a CloudWatch alarm's `metric_queries`, as the AWS provider types it.
AlarmQuery = MetricAlarmMetricQueryArgsDict
MINUTE = 60


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
