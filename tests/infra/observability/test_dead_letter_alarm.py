"""The dead-letter alarm as the whole program declares it, under mocks.

Its fields are PutMetricAlarm's (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html):
`Metrics` (MetricDataQuery: the MetricStat of the metric the publisher writes, in its namespace
and with no dimension), `ComparisonOperator` GreaterThanThreshold with `Threshold` 0 (any dead
letter), `EvaluationPeriods` and `DatapointsToAlarm` 1, `TreatMissingData` notBreaching (a silent
publisher has its own alarm), and `AlarmActions`/`OKActions` the stack's alarm topic.
"""

from __future__ import annotations

import pytest

from queuemetrics import schema
from testkit.program import ProgramRun

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


@pytest.mark.parametrize("run_name", ["dev_run", "prod_run", "ephemeral_run", "custom_run"])
def test_any_dead_letter_reaches_people(run_name: str, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    alarm = run.one(ALARM, "observability-task-dead-letters").inputs
    [query] = alarm["metricQueries"]
    metric = query["metric"]
    assert (metric["namespace"], metric["metricName"]) == (
        run.outputs["queueMetricsNamespace"],
        schema.DEAD_LETTERS.name,
    )
    assert not metric.get("dimensions"), "the publisher writes one value per stack, no dimension"
    assert metric["stat"] == "Maximum" and query["returnData"] is True
    assert (alarm["comparisonOperator"], alarm["threshold"]) == ("GreaterThanThreshold", 0)
    assert (alarm["evaluationPeriods"], alarm["datapointsToAlarm"]) == (1, 1)
    assert alarm["treatMissingData"] == "notBreaching"
    topic = run.outputs["alarmTopicArn"]
    assert alarm["alarmActions"] == [topic] and alarm["okActions"] == [topic]
    assert "python -m infra.ops dead-letters" in alarm["alarmDescription"], "says what to do"
