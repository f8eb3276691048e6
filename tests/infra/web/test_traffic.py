"""Web deployments that shift traffic (canary, linear, blue/green): two target groups, the listener
rules ECS rewrites, its role, the rollback alarms and the service fields, checked against the
botocore ECS and Application Auto Scaling models and the ECS developer guide."""

from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from infra.config.reader import StackConfigError
from infra.stack import validate
from infra.web.admin import admin_paths
from infra.web.traffic import LOAD_BALANCER_POLICY_ARN, TEST_HEADER
from testkit.program import ProgramRun, RecordedResource, bare_config, run_program
from tests.infra.services.ecs_api import ECS_MODEL, api_errors, create_service_params

SERVICE = "aws:ecs/service:Service"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
RULE = "aws:lb/listenerRule:ListenerRule"
LISTENER = "aws:lb/listener:Listener"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
POLICY = "aws:appautoscaling/policy:Policy"
ROLE = "aws:iam/role:Role"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
AUTOSCALING_MODEL = botocore.session.get_session().get_service_model("application-autoscaling")
# The provider's default wait for a service update (terraform-provider-aws aws_ecs_service timeouts).
PROVIDER_DEFAULT_MINUTES = 20


def web_service(run: ProgramRun) -> RecordedResource:
    return run.one(SERVICE, "web-service")


def rule(run: ProgramRun, kind: str) -> RecordedResource:
    return run.one(RULE, f"web-traffic-{kind}")


def strategy_run(strategy: str, **config: object) -> ProgramRun:
    return run_program("pr-31", {"ephemeral": True, "webDeployment": strategy, **config})


def doc_text(shape: str, member: str) -> str:
    return re.sub("<[^>]+>", "", ECS_MODEL.shape_for(shape).members[member].documentation)


def test_a_rolling_web_deployment_has_one_target_group_and_the_circuit_breaker(dev_run: ProgramRun) -> None:
    assert [group.name for group in dev_run.of_type(TARGET_GROUP)] == ["web-lb-targets"]
    assert [resource.name for resource in dev_run.resources if "web-traffic" in resource.name] == []
    web = web_service(dev_run).inputs
    assert "advancedConfiguration" not in web["loadBalancers"][0]
    assert "alarms" not in web and "deploymentConfiguration" not in web
    assert web["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert dev_run.outputs["webTestHeaderValue"] is None


def test_the_alternate_target_group_is_the_primary_ones_twin(prod_run: ProgramRun) -> None:
    """ECS starts every other revision in it: the same port, targets and health check."""
    primary, alternate = (prod_run.one(TARGET_GROUP, name) for name in ("web-lb-targets", "web-lb-alternate"))
    assert {**primary.inputs, "name": None} == {**alternate.inputs, "name": None}


def test_the_rules_forward_to_both_groups_on_the_listener_that_serves_the_app(prod_run: ProgramRun) -> None:
    """ECS starts from all weight on the primary group (the ECS guide's ALB resources for
    blue/green); it owns the weights from then on, so the program ignores the rules' actions
    (pulumi-aws #5771, #5798: ignoring single weights does not hold)."""
    https = prod_run.one(LISTENER, "https").state["arn"]
    groups = [
        prod_run.one(TARGET_GROUP, name).state["arn"] for name in ("web-lb-targets", "web-lb-alternate")
    ]
    for kind in ("production", "test"):
        declared = rule(prod_run, kind)
        assert declared.inputs["listenerArn"] == https, f"{kind}: HTTP only redirects; HTTPS serves the app"
        assert declared.inputs["actions"] == [
            {
                "type": "forward",
                "forward": {
                    "targetGroups": [{"arn": groups[0], "weight": 100}, {"arn": groups[1], "weight": 0}]
                },
            }
        ]
        assert declared.options["ignoreChanges"] == ("actions",), kind
    [header] = rule(prod_run, "test").inputs["conditions"]
    value = prod_run.outputs["webTestHeaderValue"]
    assert header == {"httpHeader": {"httpHeaderName": TEST_HEADER, "values": [value]}}
    assert "webTestHeaderValue" in prod_run.secret_outputs
    # ALB header conditions treat * and ? as wildcards: the value is letters and digits.
    assert re.fullmatch(r"[A-Za-z0-9]{32}", value)


def matching_rule(rules: list[dict[str, Any]], path: str, headers: dict[str, str]) -> dict[str, Any]:
    """The rule an ALB applies: the first by priority whose every condition matches (path patterns
    case-sensitive with * and ?; header values case-insensitive)."""

    def matches(condition: dict[str, Any]) -> bool:
        if "pathPattern" in condition:
            return any(fnmatch.fnmatchcase(path, value) for value in condition["pathPattern"]["values"])
        if "httpHeader" in condition:
            sent = headers.get(condition["httpHeader"]["httpHeaderName"], "")
            return any(sent.lower() == value.lower() for value in condition["httpHeader"]["values"])
        return False  # a source-IP rule: these requests come from elsewhere

    for candidate in sorted(rules, key=lambda inputs: inputs["priority"]):
        if all(matches(condition) for condition in candidate["conditions"]):
            return candidate
    raise AssertionError(f"no rule matches {path}")


def test_the_admin_stays_closed_for_test_traffic_and_users_reach_the_production_rule(
    prod_run: ProgramRun,
) -> None:
    rules = [declared.inputs for declared in prod_run.of_type(RULE)]
    header = {TEST_HEADER: prod_run.outputs["webTestHeaderValue"]}
    # Encoded spellings (/%61dmin/) are the firewall's and the app's to close (test_admin.py).
    for path in ("/admin/", "/admin/login/"):
        assert matching_rule(rules, path, header)["actions"][0]["type"] == "fixed-response", path
    assert matching_rule(rules, "/api/signups", header) == rule(prod_run, "test").inputs
    assert matching_rule(rules, "/api/signups", {}) == rule(prod_run, "production").inputs
    assert matching_rule(rules, "/healthz", {TEST_HEADER: "guess"}) == rule(prod_run, "production").inputs
    assert set(admin_paths()) <= {
        value for inputs in rules for condition in inputs["conditions"]
        for value in condition.get("pathPattern", {}).get("values", [])
    }  # fmt: skip


def test_ecs_may_assume_the_infrastructure_role_with_the_managed_load_balancer_policy(
    prod_run: ProgramRun,
) -> None:
    """The trust policy and managed policy of the ECS developer guide, "Amazon ECS infrastructure
    IAM role for load balancers"; the service names the role and waits for its policy."""
    role = prod_run.one(ROLE, "web-traffic-ecs-role")
    assert json.loads(role.inputs["assumeRolePolicy"])["Statement"] == [
        {
            "Sid": "AllowAccessToECSForInfrastructureManagement",
            "Effect": "Allow",
            "Principal": {"Service": "ecs.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ]
    attachment = prod_run.one(ATTACHMENT, "web-traffic-ecs-role")
    assert attachment.inputs == {"role": role.state["name"], "policyArn": LOAD_BALANCER_POLICY_ARN}
    web = web_service(prod_run)
    assert web.inputs["loadBalancers"][0]["advancedConfiguration"]["roleArn"] == role.state["arn"]
    for needed in (attachment, rule(prod_run, "production"), rule(prod_run, "test")):
        assert needed.urn in web.dependencies, f"ECS needs {needed.name} when the service is updated"


def test_prod_deploys_web_as_a_canary_the_ecs_api_accepts(prod_run: ProgramRun) -> None:
    web = web_service(prod_run)
    params = create_service_params(web)
    assert api_errors("CreateService", params) == ""
    update = {key: value for key, value in params.items() if key not in ("serviceName", "launchType")}
    assert api_errors("UpdateService", {**update, "service": params["serviceName"]}) == ""
    deployment = params["deploymentConfiguration"]
    assert deployment["strategy"] == "CANARY"
    assert deployment["canaryConfiguration"] == {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 5}
    assert deployment["bakeTimeInMinutes"] == 5
    assert deployment["alarms"]["enable"] and deployment["alarms"]["rollback"]
    # botocore: "The deployment circuit breaker can only be used for services using the rolling
    # update"; the developer guide ("deployment failure detection") adds blue/green, not canary.
    assert "rolling update" in doc_text("DeploymentConfiguration", "deploymentCircuitBreaker")
    assert deployment["deploymentCircuitBreaker"] == {"enable": False, "rollback": False}
    advanced = params["loadBalancers"][0]["advancedConfiguration"]
    assert advanced == {
        "alternateTargetGroupArn": prod_run.one(TARGET_GROUP, "web-lb-alternate").state["arn"],
        "productionListenerRule": rule(prod_run, "production").state["arn"],
        "testListenerRule": rule(prod_run, "test").state["arn"],
        "roleArn": prod_run.one(ROLE, "web-traffic-ecs-role").state["arn"],
    }


@pytest.mark.parametrize(
    ("strategy", "config", "expected"),
    [
        (
            "linear",
            {"webLinearStepPercent": "12.5", "webLinearStepMinutes": 2},
            {"linearConfiguration": {"stepPercent": 12.5, "stepBakeTimeInMinutes": 2}},
        ),
        # botocore: bakeTimeInMinutes "You must provide this parameter when you use BLUE_GREEN".
        ("blue_green", {"webBakeMinutes": 0}, {"bakeTimeInMinutes": 0}),
    ],
)
def test_linear_and_blue_green_deployments_are_what_the_ecs_api_takes(
    strategy: str, config: dict[str, object], expected: dict[str, object]
) -> None:
    params = create_service_params(web_service(strategy_run(strategy, **config)))
    assert api_errors("CreateService", params) == ""
    deployment = params["deploymentConfiguration"]
    assert deployment["strategy"] == strategy.upper()
    assert {key: deployment[key] for key in expected} == expected
    assert "canaryConfiguration" not in deployment
    # The developer guide ("Amazon ECS deployment failure detection"): the circuit breaker and
    # alarms "support rolling update deployment and blue/green deployment types".
    breaker = strategy == "blue_green"
    assert deployment["deploymentCircuitBreaker"] == {"enable": breaker, "rollback": breaker}
    if strategy == "blue_green":
        assert "must provide this parameter" in doc_text("DeploymentConfiguration", "bakeTimeInMinutes")
        assert "linearConfiguration" not in deployment


@pytest.mark.parametrize(
    ("shape", "member", "key", "low", "high"),
    [
        ("CanaryConfiguration", "canaryPercent", "webCanaryPercent", "0.1", "100"),
        ("CanaryConfiguration", "canaryBakeTimeInMinutes", "webCanaryMinutes", "0", "1440"),
        ("LinearConfiguration", "stepPercent", "webLinearStepPercent", "3", "100"),
        ("LinearConfiguration", "stepBakeTimeInMinutes", "webLinearStepMinutes", "0", "1440"),
    ],
)
def test_the_config_accepts_exactly_the_ranges_botocore_documents(
    shape: str, member: str, key: str, low: str, high: str
) -> None:
    """The ranges come from the model's own text ("Valid values are ... from 0.1 to 100.0")."""
    documented = re.search(r"(\d+(?:\.\d+)?) to (\d+(?:\.\d+)?)", doc_text(shape, member))
    assert documented and (float(documented[1]), float(documented[2])) == (float(low), float(high))
    for value in (low, high):
        validate(bare_config("pr-31", {"webDeployment": "canary", key: value}))
    step = "0.1" if "." in low or "Percent" in member else "1"
    for value in (f"{float(low) - float(step):g}", f"{float(high) + float(step):g}"):
        with pytest.raises(StackConfigError, match=key):
            validate(bare_config("pr-31", {"webDeployment": "canary", key: value}))


def test_rollback_alarms_watch_the_whole_load_balancer_never_one_target_group(prod_run: ProgramRun) -> None:
    """The groups swap roles every deployment: an alarm on one would watch the old revision half
    of the time."""
    names = web_service(prod_run).inputs["alarms"]["alarmNames"]
    alarms = {alarm.state["name"]: alarm.inputs for alarm in prod_run.of_type(ALARM)}
    balancer = prod_run.one("aws:lb/loadBalancer:LoadBalancer").state["arnSuffix"]
    assert len(names) == 2 and set(names) <= set(alarms)
    watched = {}
    for name in names:
        for query in alarms[name]["metricQueries"]:
            if "metric" in query:
                assert query["metric"]["dimensions"] == {"LoadBalancer": balancer}, name
                watched[query["metric"]["metricName"]] = query["metric"]["stat"]
        assert (alarms[name]["evaluationPeriods"], alarms[name]["datapointsToAlarm"]) == (2, 2)
    assert watched == {
        "RequestCount": "Sum",
        "HTTPCode_Target_5XX_Count": "Sum",
        "HTTPCode_ELB_5XX_Count": "Sum",
        "TargetResponseTime": "p99",
    }
    thresholds = sorted(alarms[name]["threshold"] for name in names)
    assert thresholds == [2.0, 5.0], "p99 above 2000 ms (TargetResponseTime is in seconds), 5xx above 5 %"


def test_ctrl_c_rolls_back_and_pulumi_waits_out_the_canary_and_the_bake(prod_run: ProgramRun) -> None:
    """pulumi-aws: sigint_rollback "requires wait_for_steady_state = true"; the provider waits
    20 minutes by default, and a canary deployment takes its window and its bake on top."""
    web = web_service(prod_run)
    assert web.inputs["sigintRollback"] is True and web.inputs["waitForSteadyState"] is True
    minutes = PROVIDER_DEFAULT_MINUTES + 5 + 5
    assert web.options["customTimeouts"] == {"create": f"{minutes}m", "update": f"{minutes}m"}


def autoscaling_query(query: dict[str, Any]) -> dict[str, Any]:
    """A recorded metric query as Application Auto Scaling's TargetTrackingMetricDataQuery."""
    if "expression" in query:
        return {"Id": query["id"], "Expression": query["expression"], "Label": query["label"],
                "ReturnData": query["returnData"]}  # fmt: skip
    metric = query["metricStat"]["metric"]
    return {
        "Id": query["id"],
        "Label": query["label"],
        "ReturnData": query["returnData"],
        "MetricStat": {
            "Metric": {
                "Namespace": metric["namespace"],
                "MetricName": metric["metricName"],
                "Dimensions": [
                    {"Name": item["name"], "Value": item["value"]} for item in metric["dimensions"]
                ],
            },
            "Stat": query["metricStat"]["stat"],
        },
    }


def test_web_scales_on_requests_per_task_of_whichever_group_serves(prod_run: ProgramRun) -> None:
    """The sum of RequestCountPerTarget over both groups (AWS sample ecs-bluegreen-autoscaling): the
    idle group adds 0. Checked against the Application Auto Scaling API model."""
    policy = prod_run.one(POLICY, "web-autoscaling-requests").inputs
    configuration = policy["targetTrackingScalingPolicyConfiguration"]
    queries = configuration["customizedMetricSpecification"]["metrics"]
    request = {
        "PolicyName": "web-requests",
        "ServiceNamespace": policy["serviceNamespace"],
        "ResourceId": policy["resourceId"],
        "ScalableDimension": policy["scalableDimension"],
        "PolicyType": policy["policyType"],
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": configuration["targetValue"],
            "CustomizedMetricSpecification": {"Metrics": [autoscaling_query(query) for query in queries]},
        },
    }
    shape = AUTOSCALING_MODEL.operation_model("PutScalingPolicy").input_shape
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()
    balancer = prod_run.one("aws:lb/loadBalancer:LoadBalancer").state["arnSuffix"]
    groups = [
        prod_run.one(TARGET_GROUP, name).state["arnSuffix"] for name in ("web-lb-targets", "web-lb-alternate")
    ]
    summed = [query for query in queries if "metricStat" in query]
    assert [
        {item["name"]: item["value"] for item in query["metricStat"]["metric"]["dimensions"]}
        for query in summed
    ] == [{"TargetGroup": group, "LoadBalancer": balancer} for group in groups]
    assert {query["metricStat"]["metric"]["metricName"] for query in summed} == {"RequestCountPerTarget"}
    [total] = [query for query in queries if query["returnData"]]
    assert total["expression"] == " + ".join(query["id"] for query in summed)
