"""Web autoscaling: target tracking on requests per task and on CPU, within the stack's range."""

import json

import pytest

from infra.stack import validate
from infra.web.autoscaling import CPU_METRIC, REQUESTS_METRIC
from testkit.program import ProgramRun, run_program

TARGET = "aws:appautoscaling/target:Target"
POLICY = "aws:appautoscaling/policy:Policy"
SERVICE = "aws:ecs/service:Service"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
STACKS = ["dev_run", "prod_run", "ephemeral_run", "custom_run"]
# Stacks with one target group (rolling web deployments); prod's two: tests/infra/web/test_traffic.py.
ONE_TARGET_GROUP = ["dev_run", "ephemeral_run", "custom_run"]


@pytest.mark.parametrize(("run_name", "low", "high"), [("dev_run", 1, 2), ("prod_run", 2, 10)])
def test_the_web_service_scales_within_the_stacks_range(run_name: str, low: int, high: int, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    web = run.one(SERVICE, "web-service")
    target = run.one(TARGET, "web-autoscaling").inputs
    cluster = run.one("aws:ecs/cluster:Cluster").inputs["name"]
    assert target["resourceId"] == f"service/{cluster}/{web.inputs['name']}"
    assert (target["minCapacity"], target["maxCapacity"]) == (low, high)
    assert web.inputs["desiredCount"] == low, "the service starts at the minimum"
    assert web.options["ignoreChanges"] == ("desiredCount",), "a deploy must not reset the scaled count"


@pytest.mark.parametrize("run_name", ONE_TARGET_GROUP)
def test_requests_per_task_and_cpu_are_tracked_on_the_stacks_own_target_group(run_name: str, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    scaling = validate(run.config).web.scaling
    target = run.one(TARGET, "web-autoscaling").inputs
    policies = {
        policy.name: policy.inputs for policy in run.of_type(POLICY) if policy.name.startswith("web-")
    }
    assert set(policies) == {"web-autoscaling-requests", "web-autoscaling-cpu"}
    for policy in policies.values():
        assert policy["policyType"] == "TargetTrackingScaling"
        assert policy["resourceId"] == target["resourceId"]
        configuration = policy["targetTrackingScalingPolicyConfiguration"]
        assert not configuration.get("disableScaleIn"), "web scales in by itself"
        assert configuration["scaleInCooldown"] > configuration["scaleOutCooldown"]
    requests = policies["web-autoscaling-requests"]["targetTrackingScalingPolicyConfiguration"]
    balancer = run.one("aws:lb/loadBalancer:LoadBalancer").state["arnSuffix"]
    target_group = run.one("aws:lb/targetGroup:TargetGroup").state["arnSuffix"]
    assert requests["predefinedMetricSpecification"] == {
        "predefinedMetricType": REQUESTS_METRIC,
        "resourceLabel": f"{balancer}/{target_group}",
    }
    assert requests["targetValue"] == scaling.requests_per_task
    cpu = policies["web-autoscaling-cpu"]["targetTrackingScalingPolicyConfiguration"]
    assert cpu["predefinedMetricSpecification"] == {"predefinedMetricType": CPU_METRIC}
    assert cpu["targetValue"] == scaling.cpu_percent


def test_the_targets_follow_the_stack_config() -> None:
    run = run_program(
        "pr-5",
        {
            "ephemeral": True,
            "webMinCount": 3,
            "webMaxCount": 7,
            "webRequestsPerTask": 250,
            "webCpuTargetPercent": 45,
        },
    )
    target = run.one(TARGET, "web-autoscaling").inputs
    assert (target["minCapacity"], target["maxCapacity"]) == (3, 7)
    values = {
        policy.name: policy.inputs["targetTrackingScalingPolicyConfiguration"]["targetValue"]
        for policy in run.of_type(POLICY)
        if policy.name.startswith("web-")
    }
    assert values == {"web-autoscaling-requests": 250, "web-autoscaling-cpu": 45}


def test_people_hear_when_web_has_run_at_its_maximum(prod_run: ProgramRun) -> None:
    alarm = prod_run.one(ALARM, "web-at-max-tasks").inputs
    assert alarm["threshold"] == 10 and alarm["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["evaluationPeriods"] == alarm["datapointsToAlarm"] == 15, "longer than a deployment"
    # Prod's web deployments shift traffic: the larger of the two target groups is the one serving.
    metrics = [query["metric"] for query in alarm["metricQueries"] if "metric" in query]
    assert {metric["metricName"] for metric in metrics} == {"HealthyHostCount"}
    assert len({metric["dimensions"]["TargetGroup"] for metric in metrics}) == 2
    [result] = [query for query in alarm["metricQueries"] if query["returnData"]]
    assert result["expression"].startswith("MAX(")


def test_a_fixed_size_web_service_has_no_at_maximum_alarm() -> None:
    run = run_program("pr-6", {"ephemeral": True, "webMinCount": 2, "webMaxCount": 2})
    assert not [alarm for alarm in run.of_type(ALARM) if alarm.name.endswith("web-at-max-tasks")]


def test_the_dashboard_shows_what_autoscaling_tracks_against_its_targets(prod_run: ProgramRun) -> None:
    body = json.loads(prod_run.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"])
    widgets = {widget["properties"]["title"]: widget["properties"] for widget in body["widgets"]}
    scaling = validate(prod_run.config).web.scaling
    lines = {
        title: [
            (line["label"], line["value"]) for line in properties.get("annotations", {}).get("horizontal", [])
        ]
        for title, properties in widgets.items()
    }
    assert lines["Web: targets"] == [("min tasks", scaling.min_count), ("max tasks", scaling.max_count)]
    assert lines["Web: requests per task (per minute)"] == [("scaling target", scaling.requests_per_task)]
    assert lines["Web: CPU (%)"] == [("scaling target", scaling.cpu_percent)]
