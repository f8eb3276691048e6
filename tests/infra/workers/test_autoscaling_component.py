"""WorkerAutoscaling under Pulumi mocks: what it declares acts on exactly what the publisher writes."""

from __future__ import annotations

import json

import pulumi
import pytest

from infra.scheduler.publisher import publisher_policy_document
from infra.workers.autoscaling import WorkerAutoscaling, WorkerAutoscalingArgs
from infra.workers.policies import PoolScaling, policy_set
from queuemetrics import schema
from queuemetrics.publisher import QueueReading, WorkerCount, metric_data, task_stats_data
from testkit.program import FabricatingMocks, RecordedResource, RecordingMonitor
from testkit.scaling_simulator import DEV_EXAMPLE, PROD_EXAMPLE

NAMESPACE = "djcelery/dev/CeleryQueues"
CLUSTER = "djcelery-dev"
SERVICE = "djcelery-dev-worker-default"
POOL = schema.PoolSpec(pool="default", queues=("default", "email"), service=SERVICE)
ALERTS_TOPIC = "arn:aws:sns:us-east-1:123456789012:djcelery-dev-alerts"

TARGET = "aws:appautoscaling/target:Target"
POLICY = "aws:appautoscaling/policy:Policy"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


class Declared:
    def __init__(self, resources: list[RecordedResource]) -> None:
        self.resources = resources

    def one(self, type_token: str, name_suffix: str = "") -> RecordedResource:
        found = [r for r in self.resources if r.type == type_token and r.name.endswith(name_suffix)]
        names = [r.name for r in self.resources if r.type == type_token]
        assert len(found) == 1, f"expected one {type_token} named *{name_suffix}, have {names}"
        return found[0]

    def of_type(self, type_token: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_token]


def declare(scaling: PoolScaling) -> Declared:
    mocks = FabricatingMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.reset_options(project="djcelery", stack="dev")
    pulumi.runtime.set_mocks(mocks, project="djcelery", stack="dev", monitor=monitor)

    @pulumi.runtime.test
    def run() -> pulumi.Output:
        autoscaling = WorkerAutoscaling(
            "worker-default-scaling",
            WorkerAutoscalingArgs(
                cluster_name=CLUSTER,
                service_name=SERVICE,
                pool=POOL.pool,
                policies=policy_set(scaling),
                metric_namespace=NAMESPACE,
                alarm_actions=[ALERTS_TOPIC],
            ),
        )
        return autoscaling.target.resource_id

    run()
    return Declared(list(monitor.recorded))


@pytest.fixture(scope="module")
def dev() -> Declared:
    return declare(DEV_EXAMPLE)


def published_metrics() -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """(namespace, metric, dimensions) of every datapoint the publisher writes for the pool."""
    data = metric_data(
        [POOL],
        {queue: QueueReading(waiting=3, oldest_sent_at=0.0) for queue in POOL.queues},
        {"default": 1},
        {SERVICE: WorkerCount(desired=1, running=1)},
        now=10.0,
    )
    measured = schema.TaskStats()
    measured.run.add(1.5)
    measured.wait.add(0.5)
    data += task_stats_data({POOL.pool: measured}, now=10.0)
    return {
        (NAMESPACE, d["MetricName"], tuple(sorted((x["Name"], x["Value"]) for x in d["Dimensions"])))
        for d in data
    }


def referenced(namespace: str, metric: str, dimensions: dict[str, str]) -> tuple[str, str, tuple]:
    return namespace, metric, tuple(sorted(dimensions.items()))


def single_metric(alarm: RecordedResource) -> dict:
    """The one metric an alarm on a single metric watches (PutMetricAlarm `Metrics`, one query
    that returns data), with its alarm-level settings."""
    queries = alarm.inputs["metricQueries"]
    assert len(queries) == 1 and queries[0]["returnData"], f"{alarm.name} watches more than one metric"
    return {**queries[0]["metric"], **alarm.inputs}


def test_every_metric_the_policies_and_alarms_watch_is_one_the_publisher_writes(dev):
    published = published_metrics()
    watched = []
    tracking = dev.one(POLICY, "-backlog-tracking").inputs["targetTrackingScalingPolicyConfiguration"]
    spec = tracking["customizedMetricSpecification"]
    watched.append(
        referenced(spec["namespace"], spec["metricName"], {d["name"]: d["value"] for d in spec["dimensions"]})
    )
    for alarm in dev.of_type(ALARM):
        for query in alarm.inputs["metricQueries"]:
            if "metric" in query:
                metric = query["metric"]
                watched.append(referenced(metric["namespace"], metric["metricName"], metric["dimensions"]))
    assert len(watched) == 11, (
        f"tracking, 3 single-metric alarms, 2 scale-in, 3 fast scale-out and 2 calibration queries; "
        f"got {watched}"
    )
    unpublished = [item for item in watched if item not in published]
    assert not unpublished, f"watched but never published: {unpublished}"


def test_scalable_target_moves_the_service_desired_count_between_min_and_max(dev):
    target = dev.one(TARGET).inputs
    assert target["resourceId"] == f"service/{CLUSTER}/{SERVICE}"
    assert target["scalableDimension"] == "ecs:service:DesiredCount"
    assert target["serviceNamespace"] == "ecs"
    assert (target["minCapacity"], target["maxCapacity"]) == (
        DEV_EXAMPLE.min_count,
        DEV_EXAMPLE.max_count,
    )
    for policy in dev.of_type(POLICY):
        assert policy.inputs["resourceId"] == target["resourceId"], f"{policy.name} acts on another target"


def test_target_tracking_scales_out_only_on_backlog_per_worker(dev):
    tracking = dev.one(POLICY, "-backlog-tracking").inputs
    assert tracking["policyType"] == "TargetTrackingScaling"
    config = tracking["targetTrackingScalingPolicyConfiguration"]
    assert config["targetValue"] == DEV_EXAMPLE.target_backlog_per_worker == 60
    assert config["disableScaleIn"] is True, "scale-in belongs to the quiet-time step policy"
    assert config["scaleOutCooldown"] == DEV_EXAMPLE.timings.scale_out_cooldown_seconds
    assert config["customizedMetricSpecification"]["metricName"] == schema.BACKLOG_PER_WORKER.name


def test_wake_up_alarm_uses_a_high_resolution_period_and_triggers_the_exact_capacity_steps(dev):
    policies = policy_set(DEV_EXAMPLE)
    policy = dev.one(POLICY, "-wake-up")
    config = policy.inputs["stepScalingPolicyConfiguration"]
    assert config["adjustmentType"] == "ExactCapacity"
    assert [
        (
            step.get("metricIntervalLowerBound"),
            step.get("metricIntervalUpperBound"),
            step["scalingAdjustment"],
        )
        for step in config["stepAdjustments"]
    ] == [("0", "60", 1), ("60", "120", 2), ("120", None, 3)]
    assert len(config["stepAdjustments"]) == len(policies.wake_up_steps)

    alarm = dev.one(ALARM, "-wake-up")
    watched = single_metric(alarm)
    assert watched["metricName"] == schema.WAKE_UP_BACKLOG.name
    assert watched["period"] == 10, "a 10 s publish interval allows a 10 s alarm"
    assert watched["stat"] == "Maximum"
    assert (alarm.inputs["comparisonOperator"], alarm.inputs["threshold"]) == (
        "GreaterThanOrEqualToThreshold",
        1,
    )
    assert alarm.inputs["treatMissingData"] == "notBreaching"
    assert policy.urn in alarm.dependencies, "the wake-up alarm must trigger the wake-up policy"
    sub_minute = [
        d["StorageResolution"]
        for d in metric_data([POOL], {q: QueueReading(0, None) for q in POOL.queues}, {}, None, 0.0)
    ]
    assert set(sub_minute) == {1}, "a sub-minute alarm period needs high-resolution datapoints"


def test_fast_scale_out_adds_the_missing_workers_within_one_high_resolution_period(dev):
    policy = dev.one(POLICY, "-fast-scale-out")
    config = policy.inputs["stepScalingPolicyConfiguration"]
    assert config["adjustmentType"] == "ChangeInCapacity", "adds to what the pool has; never removes"
    assert config["cooldown"] == DEV_EXAMPLE.timings.scale_out_cooldown_seconds
    steps = [
        (
            step.get("metricIntervalLowerBound"),
            step.get("metricIntervalUpperBound"),
            step["scalingAdjustment"],
        )
        for step in config["stepAdjustments"]
    ]
    assert steps == [("0", "1", 1), ("1", None, 2)], "dev has at most 3 workers: at most 2 to add"

    alarm = dev.one(ALARM, "-fast-scale-out").inputs
    assert (alarm["comparisonOperator"], alarm["threshold"]) == ("GreaterThanOrEqualToThreshold", 1)
    assert (alarm["evaluationPeriods"], alarm["datapointsToAlarm"]) == (1, 1)
    assert alarm["treatMissingData"] == "notBreaching", "a silent publisher adds nobody"
    queries = {query["id"]: query for query in alarm["metricQueries"]}
    assert {queries[name]["metric"]["metricName"] for name in ("backlog", "desired", "age")} == {
        schema.POOL_BACKLOG.name,
        schema.POOL_DESIRED_WORKERS.name,
        schema.POOL_OLDEST_AGE.name,
    }
    assert {queries[name]["metric"]["period"] for name in ("backlog", "desired", "age")} == {10}
    assert queries["gap"]["expression"] == "CEIL(backlog / 60) - desired"
    assert queries["result"]["expression"] == (
        "IF(desired > 0, IF(FILL(age, 0) > 60, IF(gap > 1, gap, 1), gap), 0)"
    )
    assert [query["id"] for query in alarm["metricQueries"] if query["returnData"]] == ["result"]
    assert policy.urn in dev.one(ALARM, "-fast-scale-out").dependencies


def test_people_hear_when_task_seconds_is_off_from_the_measured_run_time(dev):
    alarm = dev.one(ALARM, "-calibration").inputs
    queries = {query["id"]: query for query in alarm["metricQueries"]}
    assert queries["run"]["metric"]["metricName"] == schema.POOL_TASK_RUN_SECONDS.name
    statistics = (queries["run"]["metric"]["stat"], queries["tasks"]["metric"]["stat"])
    assert statistics == ("Average", "SampleCount")
    assert queries["run"]["metric"]["period"] == 1800
    assert queries["offby"]["expression"] == "IF(run > 2, run / 2, 2 / run)", "taskSeconds of dev is 2"
    assert queries["result"]["expression"] == "IF(tasks >= 30, offby, 0)"
    assert (alarm["comparisonOperator"], alarm["threshold"]) == ("GreaterThanThreshold", 2)
    assert alarm["treatMissingData"] == "notBreaching", "an idle pool proves nothing"
    assert alarm["alarmActions"] == [ALERTS_TOPIC] and alarm["okActions"] == [ALERTS_TOPIC]


def test_scale_in_is_one_worker_per_cooldown_after_the_quiet_time(dev):
    policy = dev.one(POLICY, "-scale-in")
    config = policy.inputs["stepScalingPolicyConfiguration"]
    assert config["adjustmentType"] == "ChangeInCapacity"
    assert config["cooldown"] == DEV_EXAMPLE.timings.scale_in_cooldown_seconds
    assert config["stepAdjustments"] == [{"metricIntervalUpperBound": "0", "scalingAdjustment": -1}]

    alarm = dev.one(ALARM, "-scale-in")
    inputs = alarm.inputs
    assert (
        inputs["evaluationPeriods"]
        == inputs["datapointsToAlarm"]
        == DEV_EXAMPLE.timings.scale_in_quiet_minutes
    )
    assert (inputs["comparisonOperator"], inputs["threshold"]) == ("LessThanOrEqualToThreshold", 0)
    assert inputs["treatMissingData"] == "notBreaching", "a silent publisher must not shrink the pool"
    queries = {query["id"]: query for query in inputs["metricQueries"]}
    assert queries["result"]["expression"] == "IF(desired > 0, backlog - 30 * (desired - 1), 1)"
    assert queries["result"]["returnData"] is True
    assert queries["backlog"]["metric"]["metricName"] == schema.POOL_BACKLOG.name
    assert queries["desired"]["metric"]["metricName"] == schema.POOL_DESIRED_WORKERS.name
    assert {query["metric"]["period"] for query in (queries["backlog"], queries["desired"])} == {60}
    assert policy.urn in alarm.dependencies


def test_people_are_told_about_old_messages_and_a_silent_publisher(dev):
    age = single_metric(dev.one(ALARM, "-queue-age"))
    assert age["metricName"] == schema.POOL_OLDEST_AGE.name
    assert age["threshold"] == DEV_EXAMPLE.timings.queue_age_alarm_seconds
    assert age["alarmActions"] == [ALERTS_TOPIC] and age["okActions"] == [ALERTS_TOPIC]

    silent = single_metric(dev.one(ALARM, "-publisher-silent"))
    assert silent["metricName"] == schema.POOL_BACKLOG.name, "published on every tick that reads the broker"
    assert silent["stat"] == "SampleCount"
    assert silent["treatMissingData"] == "breaching", "no data is exactly what this alarm is about"
    assert silent["period"] * silent["evaluationPeriods"] >= 300, "a Beat redeploy must not page anyone"
    assert silent["alarmActions"] == [ALERTS_TOPIC]


def test_prod_keeps_a_minimum_worker_and_scales_in_slowly():
    prod = declare(PROD_EXAMPLE)
    assert prod.one(TARGET).inputs["minCapacity"] == 1
    assert prod.one(ALARM, "-scale-in").inputs["evaluationPeriods"] == 15
    assert prod.one(POLICY, "-scale-in").inputs["stepScalingPolicyConfiguration"]["cooldown"] == 300


def test_publisher_policy_allows_its_namespace_and_its_cluster_services_only():
    document = publisher_policy_document(NAMESPACE, CLUSTER, "eu-west-1", "123456789012")
    statements = {statement["Sid"]: statement for statement in document["Statement"]}
    assert set(statements) == {"PublishQueueMetrics", "ReadWorkerCounts"}
    put = statements["PublishQueueMetrics"]
    assert put["Action"] == "cloudwatch:PutMetricData"
    assert put["Condition"] == {"StringEquals": {"cloudwatch:namespace": NAMESPACE}}
    describe = statements["ReadWorkerCounts"]
    assert describe["Action"] == "ecs:DescribeServices"
    assert describe["Resource"] == f"arn:aws:ecs:eu-west-1:123456789012:service/{CLUSTER}/*"
    assert all(statement["Effect"] == "Allow" for statement in document["Statement"])
    json.dumps(document)  # a policy document must serialize as is
