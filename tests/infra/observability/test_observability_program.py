"""The dashboard, alarms and deployment events as the whole program declares them, under mocks.

Every metric the dashboard draws or an alarm watches must name something the same stack declares
(an ALB, a target group, a database, a broker node, a worker pool and its queues): the recorded
resources' own state is the reference, so a renamed resource or metric fails here, not in a
dashboard full of empty graphs.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.cloudwatch.load_balancer import ALB_NAMESPACE
from infra.config.reader import StackConfigError
from infra.observability.metrics import (
    CACHE_NAMESPACE,
    ECS_NAMESPACE,
    GIB,
    RDS_NAMESPACE,
    WAF_NAMESPACE,
)
from infra.stack import StackConfig, validate
from queuemetrics import schema
from testkit.program import ProgramRun, RecordedResource, bare_config, run_program

STACKS = ["dev_run", "prod_run", "ephemeral_run", "custom_run"]
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
TOPIC = "aws:sns/topic:Topic"
TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
EVENT_RULE = "aws:cloudwatch/eventRule:EventRule"
EVENT_TARGET = "aws:cloudwatch/eventTarget:EventTarget"
SERVICE = "aws:ecs/service:Service"
SCALING_POLICY = "aws:appautoscaling/policy:Policy"
WEB_ACL = "aws:wafv2/webAcl:WebAcl"

# The dimensions AWS publishes each metric under (ELB, RDS and ElastiCache CloudWatch docs).
AWS_DIMENSIONS = {
    (ALB_NAMESPACE, "RequestCount"): {"LoadBalancer"},
    (ALB_NAMESPACE, "HTTPCode_Target_5XX_Count"): {"LoadBalancer"},
    (ALB_NAMESPACE, "HTTPCode_ELB_5XX_Count"): {"LoadBalancer"},
    (ALB_NAMESPACE, "TargetResponseTime"): {"LoadBalancer"},
    (ALB_NAMESPACE, "HealthyHostCount"): {"LoadBalancer", "TargetGroup"},
    (ALB_NAMESPACE, "UnHealthyHostCount"): {"LoadBalancer", "TargetGroup"},
    (ALB_NAMESPACE, "RequestCountPerTarget"): {"LoadBalancer", "TargetGroup"},
    (ECS_NAMESPACE, "CPUUtilization"): {"ClusterName", "ServiceName"},
    (RDS_NAMESPACE, "CPUUtilization"): {"DBInstanceIdentifier"},
    (RDS_NAMESPACE, "DatabaseConnections"): {"DBInstanceIdentifier"},
    (RDS_NAMESPACE, "FreeStorageSpace"): {"DBInstanceIdentifier"},
    (CACHE_NAMESPACE, "DatabaseMemoryUsagePercentage"): {"CacheClusterId"},
    (CACHE_NAMESPACE, "Evictions"): {"CacheClusterId"},
    (CACHE_NAMESPACE, "CurrConnections"): {"CacheClusterId"},
    # EventBridge user guide, "Monitoring Amazon EventBridge": rule metrics by RuleName.
    ("AWS/Events", "FailedInvocations"): {"RuleName"},
    # SQS developer guide, "Available CloudWatch metrics for Amazon SQS": by QueueName.
    ("AWS/SQS", "ApproximateNumberOfMessagesVisible"): {"QueueName"},
}
# Drawn only where the stack has a WAF web ACL (wafEnabled).
WAF_DIMENSIONS = {
    (WAF_NAMESPACE, name): {"WebACL", "Region", "Rule"}
    for name in ("AllowedRequests", "BlockedRequests", "CountedRequests")
}
# Every metric the publisher writes: per queue, per pool, and the app's own (no dimension).
QUEUE_METRICS = {
    metric.name: metric
    for metric in (*schema.QUEUE_METRICS, *schema.POOL_METRICS, *schema.TASK_METRICS, *schema.APP_METRICS)
}

# Config values unlike any default, to see each threshold follow its key.
OVERRIDES = {
    "web5xxAlarmPercent": 17,
    "dbFreeStorageAlarmPercent": 25,
    "redisMemoryAlarmPercent": 65,
    "beatAlarmMinutes": 12,
    "queueAgeAlarmSeconds": 90,
    "alarmEmail": "ops@example.com",
}


@pytest.fixture(scope="module")
def overridden_run() -> ProgramRun:
    return run_program("dev", OVERRIDES)


def config_of(run: ProgramRun) -> StackConfig:
    return validate(run.config)


def declared_dimension_values(run: ProgramRun) -> dict[tuple[str, str], set[str]]:
    """(namespace, dimension) -> the values the stack's resources publish under, from their state."""
    config = config_of(run)
    namespace = run.outputs["queueMetricsNamespace"]
    return {
        (ALB_NAMESPACE, "LoadBalancer"): {
            r.state["arnSuffix"] for r in run.of_type("aws:lb/loadBalancer:LoadBalancer")
        },
        (ALB_NAMESPACE, "TargetGroup"): {
            r.state["arnSuffix"] for r in run.of_type("aws:lb/targetGroup:TargetGroup")
        },
        (RDS_NAMESPACE, "DBInstanceIdentifier"): {
            r.state["identifier"] for r in run.of_type("aws:rds/instance:Instance")
        },
        (CACHE_NAMESPACE, "CacheClusterId"): {
            member
            for r in run.of_type("aws:elasticache/replicationGroup:ReplicationGroup")
            for member in r.state["memberClusters"]
        },
        (ECS_NAMESPACE, "ClusterName"): {r.state["name"] for r in run.of_type("aws:ecs/cluster:Cluster")},
        (ECS_NAMESPACE, "ServiceName"): {r.state["name"] for r in run.of_type(SERVICE)},
        (WAF_NAMESPACE, "WebACL"): {r.state["name"] for r in run.of_type(WEB_ACL)},
        (WAF_NAMESPACE, "Region"): {"us-east-1"},
        (WAF_NAMESPACE, "Rule"): {
            "ALL",
            *(
                rule["visibilityConfig"]["metricName"]
                for acl in run.of_type(WEB_ACL)
                for rule in acl.inputs["rules"]
            ),
        },
        ("AWS/Events", "RuleName"): {
            r.state["name"] for r in run.of_type("aws:cloudwatch/eventRule:EventRule")
        },
        ("AWS/SQS", "QueueName"): {r.state["name"] for r in run.of_type("aws:sqs/queue:Queue")},
        (namespace, schema.POOL_DIMENSION): {pool.name for pool in config.workers.pools},
        (namespace, schema.QUEUE_DIMENSION): {
            queue for pool in config.workers.pools for queue in pool.queues
        },
    }


def assert_names_declared(run: ProgramRun, namespace: str, name: str, dimensions: dict[str, str]) -> None:
    where = f"{run.stack}: {namespace} {name} {dimensions}"
    declared = declared_dimension_values(run)
    if namespace == run.outputs["queueMetricsNamespace"]:
        assert name in QUEUE_METRICS, f"{where}: the publisher writes no such metric"
        assert tuple(dimensions) == QUEUE_METRICS[name].dimensions, f"{where}: not the publisher's dimensions"
    else:
        known = {**AWS_DIMENSIONS, **WAF_DIMENSIONS}
        assert (namespace, name) in known, f"{where}: not a metric this stack is known to publish"
        assert set(dimensions) == known[namespace, name], f"{where}: AWS publishes other dimensions"
    for dimension, value in dimensions.items():
        assert value in declared[namespace, dimension], (
            f"{where}: {dimension}={value!r} is none of the stack's {sorted(declared[namespace, dimension])}"
        )


def widget_metrics(widget: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """(namespace, metric, dimensions) of each metric row of a widget; expression rows are skipped."""
    found = []
    for row in widget["properties"]["metrics"]:
        if isinstance(row[0], dict):
            continue
        namespace, name, *rest = row
        pairs = rest[:-1] if rest and isinstance(rest[-1], dict) else rest
        found.append((namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True))))
    return found


def dashboard(run: ProgramRun) -> dict[str, Any]:
    return json.loads(run.one(DASHBOARD).inputs["dashboardBody"])


def people_alarms(run: ProgramRun) -> dict[str, RecordedResource]:
    """The alarms that notify people, by name: this component's and autoscaling's age, silence and
    calibration ones."""
    return {
        alarm.name: alarm
        for alarm in run.of_type(ALARM)
        if alarm.name.startswith("observability-")
        or alarm.name.endswith(("-queue-age", "-publisher-silent", "-calibration"))
    }


def alarm_metrics(alarm: RecordedResource) -> list[tuple[str, str, dict[str, str]]]:
    return [
        (query["metric"]["namespace"], query["metric"]["metricName"], query["metric"]["dimensions"])
        for query in alarm.inputs["metricQueries"]
        if "metric" in query
    ]


@pytest.mark.parametrize("run_name", STACKS)
def test_every_dashboard_metric_names_a_resource_and_metric_the_stack_declares(run_name, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    body = dashboard(run)
    assert run.one(DASHBOARD).inputs["dashboardName"] == run.outputs["dashboardName"]
    for widget in body["widgets"]:
        assert widget["properties"]["region"] == "us-east-1", widget["properties"]["title"]
        rows = widget["properties"]["metrics"]
        assert rows, f"{run.stack}: widget {widget['properties']['title']!r} draws nothing"
        for namespace, name, dimensions in widget_metrics(widget):
            assert_names_declared(run, namespace, name, dimensions)
        ids = {row[-1]["id"] for row in rows if isinstance(row[-1], dict) and "id" in row[-1]}
        for row in rows:
            if isinstance(row[0], dict):
                used = _identifiers(row[0]["expression"])
                assert used <= ids, (
                    f"{widget['properties']['title']}: expression uses unknown ids {used - ids}"
                )


@pytest.mark.parametrize("run_name", STACKS)
def test_dashboard_shows_each_queue_each_pool_web_database_broker_and_beat(run_name, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    config = config_of(run)
    drawn = {
        (name, tuple(sorted(dimensions.items())))
        for widget in dashboard(run)["widgets"]
        for _namespace, name, dimensions in widget_metrics(widget)
    }
    names = {name for name, _dimensions in drawn}
    for pool in config.workers.pools:
        for queue in pool.queues:
            for metric in (schema.QUEUE_WAITING, schema.QUEUE_OLDEST_AGE):
                key = (metric.name, tuple(sorted(schema.dimensions(metric, pool.name, queue).items())))
                assert key in drawn, (
                    f"{run.stack}: no {metric.name} graph for queue {queue} of pool {pool.name}"
                )
        for metric in (schema.POOL_DESIRED_WORKERS, schema.POOL_RUNNING_WORKERS):
            key = (metric.name, tuple(sorted(schema.dimensions(metric, pool.name).items())))
            assert key in drawn, f"{run.stack}: no {metric.name} graph for pool {pool.name}"
    assert {name for _namespace, name in AWS_DIMENSIONS} <= names, f"{run.stack}: AWS metrics missing"
    waf = {name for _namespace, name in WAF_DIMENSIONS}
    assert (waf <= names) == config.web.firewall.enabled, f"{run.stack}: WAF graphs iff WAF is on"
    titles = [widget["properties"]["title"] for widget in dashboard(run)["widgets"]]
    assert ("Celery Beat: tasks running" in titles) == config.beat.enabled, titles


@pytest.mark.parametrize("run_name", STACKS)
def test_every_alarm_has_an_action_and_people_alarms_go_to_the_stack_topic(run_name, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    topic_arn = run.one(TOPIC).state["arn"]
    assert run.outputs["alarmTopicArn"] == topic_arn
    scaling_policies = {policy.state["arn"] for policy in run.of_type(SCALING_POLICY)}
    people = people_alarms(run)
    pools = config_of(run).workers.pools
    assert len([name for name in people if name.endswith("-queue-age")]) == len(pools), sorted(people)
    assert len([name for name in people if name.endswith("-publisher-silent")]) == len(pools), sorted(people)
    assert len([name for name in people if name.endswith("-calibration")]) == len(pools), sorted(people)
    # A web deployment's rollback alarms act through ECS, which watches them (infra/web/traffic.py).
    rolled_back_on = {
        name for declared in run.of_type("aws:ecs/service:Service") for name in
        (declared.inputs.get("alarms") or {}).get("alarmNames", [])
    }  # fmt: skip
    for alarm in run.of_type(ALARM):
        actions = alarm.inputs.get("alarmActions")
        if alarm.state["name"] in rolled_back_on:
            continue
        assert actions, f"{run.stack}: alarm {alarm.name} tells no one and scales nothing"
        if alarm.name in people:
            assert actions == [topic_arn], f"{alarm.name} does not notify the stack topic: {actions}"
            assert alarm.inputs["okActions"] == [topic_arn], f"{alarm.name}: no all-clear to the topic"
        else:
            assert set(actions) <= scaling_policies, f"{alarm.name} acts on neither people nor scaling"


@pytest.mark.parametrize("run_name", STACKS)
def test_every_alarm_watches_what_the_stack_declares(run_name, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    for alarm in people_alarms(run).values():
        if "metricQueries" in alarm.inputs:
            queries = alarm.inputs["metricQueries"]
            assert sum(bool(query.get("returnData")) for query in queries) == 1, alarm.name
            ids = {query["id"] for query in queries}
            for query in queries:
                if "expression" in query:
                    unknown = _identifiers(query["expression"]) - ids
                    assert not unknown, f"{alarm.name}: {query['expression']!r} uses unknown ids {unknown}"
            watched = alarm_metrics(alarm)
        else:
            watched = [(alarm.inputs["namespace"], alarm.inputs["metricName"], alarm.inputs["dimensions"])]
        assert watched, f"{alarm.name} watches no metric"
        for namespace, name, dimensions in watched:
            assert_names_declared(run, namespace, name, dimensions)


def observability_alarm(run: ProgramRun, key: str) -> dict[str, Any]:
    return run.one(ALARM, f"observability-{key}").inputs


@pytest.mark.parametrize("run_name", [*STACKS, "overridden_run"])
def test_thresholds_come_from_the_stack_config(run_name, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    config = config_of(run)
    assert observability_alarm(run, "web-5xx")["threshold"] == config.alarms.web_5xx_percent
    assert observability_alarm(run, "broker-memory")["threshold"] == config.alarms.redis_memory_percent
    assert observability_alarm(run, "db-free-storage")["threshold"] == (
        config.database.allocated_storage_gib * GIB * config.alarms.db_free_storage_percent / 100
    )
    for alarm in run.of_type(ALARM):
        if alarm.name.endswith("-queue-age"):
            assert alarm.inputs["threshold"] == config.workers.timings.queue_age_alarm_seconds, alarm.name
    beat_alarms = [alarm for alarm in run.of_type(ALARM) if alarm.name == "observability-beat-count"]
    assert len(beat_alarms) == int(config.beat.enabled), f"{run.stack}: Beat alarm iff Beat runs"
    if beat_alarms:
        inputs = beat_alarms[0].inputs
        period = next(query["metric"]["period"] for query in inputs["metricQueries"] if "metric" in query)
        watched_seconds = inputs["evaluationPeriods"] * period
        assert config.alarms.beat_minutes * 60 <= watched_seconds < config.alarms.beat_minutes * 60 + period


def test_a_changed_threshold_changes_the_alarm(dev_run: ProgramRun, overridden_run: ProgramRun) -> None:
    for key, config_key in [
        ("web-5xx", "web5xxAlarmPercent"),
        ("broker-memory", "redisMemoryAlarmPercent"),
        ("db-free-storage", "dbFreeStorageAlarmPercent"),
    ]:
        before, after = observability_alarm(dev_run, key), observability_alarm(overridden_run, key)
        assert before["threshold"] != after["threshold"], f"{config_key} does not move the {key} alarm"
    assert (
        observability_alarm(overridden_run, "beat-count")["evaluationPeriods"]
        > observability_alarm(dev_run, "beat-count")["evaluationPeriods"]
    ), "beatAlarmMinutes does not lengthen the Beat alarm"


def test_alarm_email_subscribes_to_the_topic_only_when_configured(
    dev_run: ProgramRun, overridden_run: ProgramRun
) -> None:
    assert dev_run.of_type(SUBSCRIPTION) == [], "no e-mail configured, yet a subscription is declared"
    subscription = overridden_run.one(SUBSCRIPTION).inputs
    assert subscription["protocol"] == "email"
    assert subscription["endpoint"] == OVERRIDES["alarmEmail"]
    assert subscription["topic"] == overridden_run.one(TOPIC).state["arn"]


@pytest.mark.parametrize("run_name", STACKS)
def test_failed_deployments_and_rollbacks_of_every_service_reach_the_topic(run_name, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    rule = run.one(EVENT_RULE, "observability-deployments")
    pattern = json.loads(rule.inputs["eventPattern"])
    service_arns = {service.id for service in run.of_type(SERVICE)}
    assert set(pattern["resources"]) == service_arns, "the rule must cover exactly the stack's services"
    assert pattern["source"] == ["aws.ecs"]
    assert pattern["detail-type"] == ["ECS Deployment State Change"]

    topic_arn = run.one(TOPIC).state["arn"]
    target = run.one(EVENT_TARGET).inputs
    assert (target["rule"], target["arn"]) == (rule.state["name"], topic_arn)

    policy_resource = run.one(TOPIC_POLICY)
    assert policy_resource.inputs["arn"] == topic_arn
    statements = {
        statement["Principal"]["Service"]: statement
        for statement in json.loads(policy_resource.inputs["policy"])["Statement"]
    }
    assert set(statements) == {"events.amazonaws.com", "cloudwatch.amazonaws.com"}
    assert statements["events.amazonaws.com"]["Condition"] == {
        "ArnEquals": {"aws:SourceArn": rule.state["arn"]}
    }
    assert statements["cloudwatch.amazonaws.com"]["Condition"]["StringEquals"] == {
        "aws:SourceAccount": "123456789012"
    }
    for statement in statements.values():
        assert (statement["Effect"], statement["Action"], statement["Resource"]) == (
            "Allow",
            "sns:Publish",
            topic_arn,
        )
    # EventBridge can publish only once the policy exists.
    assert policy_resource.urn in run.one(EVENT_TARGET).dependencies


@pytest.mark.parametrize("run_name", STACKS)
def test_deployment_events_that_cannot_be_delivered_are_kept_and_alarmed(run_name, request) -> None:
    """EventBridge sends what it fails to deliver to the target's dead-letter queue, which needs a
    queue policy for events.amazonaws.com with the rule as aws:SourceArn (EventBridge user guide,
    "Using dead-letter queues to process undelivered events"); SQS keeps a message at most
    1,209,600 s (botocore sqs `SetQueueAttributes`, MessageRetentionPeriod)."""
    run: ProgramRun = request.getfixturevalue(run_name)
    rule = run.one(EVENT_RULE, "observability-deployments")
    queue = run.one("aws:sqs/queue:Queue", "deployment-dead-letters")
    assert run.one(EVENT_TARGET).inputs["deadLetterConfig"] == {"arn": queue.state["arn"]}
    assert queue.inputs["messageRetentionSeconds"] == 1_209_600
    key = run.of_type("aws:kms/key:Key")
    if key:
        assert queue.inputs["kmsMasterKeyId"] == key[0].state["arn"]
    else:
        assert queue.inputs["sqsManagedSseEnabled"] is True, "encrypted at rest either way"
    policy = run.one("aws:sqs/queuePolicy:QueuePolicy")
    [statement] = json.loads(policy.inputs["policy"])["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert (statement["Action"], statement["Resource"]) == ("sqs:SendMessage", queue.state["arn"])
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": rule.state["arn"]}}
    assert policy.urn in run.one(EVENT_TARGET).dependencies
    alarms = {alarm.name.removeprefix("observability-"): alarm for alarm in run.of_type(ALARM)}
    failing = alarms["deployment-events-failing"].inputs["metricQueries"][0]["metric"]
    assert (failing["namespace"], failing["metricName"], failing["dimensions"]) == (
        "AWS/Events",
        "FailedInvocations",
        {"RuleName": rule.state["name"]},
    )
    waiting = alarms["deployment-events-undelivered"].inputs["metricQueries"][0]["metric"]
    assert waiting["dimensions"] == {"QueueName": queue.state["name"]}
    topic_arn = run.one(TOPIC).state["arn"]
    assert all(
        alarms[key].inputs["alarmActions"] == [topic_arn]
        for key in ("deployment-events-failing", "deployment-events-undelivered")
    )


def test_bad_alarm_settings_are_refused_with_every_key_named() -> None:
    raw = {
        **bare_config("dev"),
        "alarmEmail": "ops at example",
        "web5xxAlarmPercent": "0",
        "dbFreeStorageAlarmPercent": "95",
        "redisMemoryAlarmPercent": "five",
        "beatAlarmMinutes": "0",
    }
    with pytest.raises(StackConfigError) as refused:
        validate(raw)
    assert sorted(refused.value.keys) == sorted(
        [
            "alarmEmail",
            "web5xxAlarmPercent",
            "dbFreeStorageAlarmPercent",
            "redisMemoryAlarmPercent",
            "beatAlarmMinutes",
        ]
    )
    assert "e-mail address" in str(refused.value)


def _identifiers(expression: str) -> set[str]:
    """Metric ids in a metric math expression: words that are not functions or numbers."""
    words = "".join(char if char.isalnum() or char == "_" else " " for char in expression).split()
    functions = {"IF", "FILL", "SUM", "MAX", "MIN", "ABS", "AVG"}
    return {word for word in words if word not in functions and not word[0].isdigit()}


@pytest.mark.parametrize("run_name", STACKS)
def test_welcome_emails_that_failed_for_good_reach_people(run_name: str, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    topic = run.outputs["alarmTopicArn"]
    failed = observability_alarm(run, "welcome-emails-failed")
    [query] = failed["metricQueries"]
    assert query["metric"]["metricName"] == schema.WELCOME_EMAILS_FAILED.name
    assert query["metric"]["namespace"] == run.outputs["queueMetricsNamespace"]
    assert (failed["comparisonOperator"], failed["threshold"]) == ("GreaterThanThreshold", 0)
    assert failed["alarmActions"] == [topic], "one failure is enough to tell people"
    refusing = observability_alarm(run, "mail-server-refusing")
    [query] = refusing["metricQueries"]
    assert query["metric"]["metricName"] == schema.WELCOME_EMAILS_RETRYING.name
    watched = refusing["evaluationPeriods"] * query["metric"]["period"]
    assert watched == 30 * 60, "a mail server refusing for half an hour, not one bounced attempt"


def test_web_target_alarms_follow_the_tasks_to_either_target_group(prod_run: ProgramRun) -> None:
    """A traffic-shifting deployment leaves the web tasks in the other target group every time:
    an alarm on one group would say the site is down after every other deployment. The "no healthy
    target" alarm sums both groups, the "unhealthy target" alarm takes the worse one."""
    groups = {group.state["arnSuffix"] for group in prod_run.of_type("aws:lb/targetGroup:TargetGroup")}
    assert len(groups) == 2
    for key, combine in (("web-no-healthy-targets", "SUM("), ("web-unhealthy-targets", "MAX(")):
        queries = prod_run.one(ALARM, key).inputs["metricQueries"]
        watched = {query["metric"]["dimensions"]["TargetGroup"] for query in queries if "metric" in query}
        assert watched == groups, key
        [result] = [query for query in queries if query["returnData"]]
        assert result["expression"].startswith(combine), result
