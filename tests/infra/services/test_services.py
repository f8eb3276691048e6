"""The cluster, the task definition of each role and the ECS services that run them."""

import json

import pytest

from infra import app_contract
from infra.services.task_sizes import is_valid_task_size
from testkit.program import ProgramRun, RecordedResource
from tests.infra.conftest import CUSTOM_POOLS
from tests.infra.services.ecs_api import (
    api_errors,
    container_definitions,
    create_service_params,
    register_task_definition_params,
)

TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
SERVICE = "aws:ecs/service:Service"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
STACKS = ["dev_run", "prod_run", "ephemeral_run", "custom_run"]


def task_definition(run: ProgramRun, task: str) -> RecordedResource:
    return run.one(TASK_DEFINITION, f"{task}-task-definition")


def service(run: ProgramRun, task: str) -> RecordedResource:
    return run.one(SERVICE, f"{task}-service")


def tasks_of(run: ProgramRun) -> list[str]:
    return [definition.name.removesuffix("-task-definition") for definition in run.of_type(TASK_DEFINITION)]


def environment(container: dict) -> dict[str, str]:
    return {variable["name"]: variable["value"] for variable in container["environment"]}


def policy_statements(run: ProgramRun, policy_name: str) -> list[dict]:
    return json.loads(run.one(ROLE_POLICY, policy_name).inputs["policy"])["Statement"]


def test_each_stack_declares_web_migrate_every_worker_pool_and_beat(
    dev_run: ProgramRun, prod_run: ProgramRun, custom_run: ProgramRun
) -> None:
    assert sorted(tasks_of(dev_run)) == ["beat", "migrate", "web", "worker-default"]
    assert sorted(tasks_of(prod_run)) == ["beat", "migrate", "web", "worker-default", "worker-email"]
    # Without Beat the queue-metrics publisher gets its own service, or idle pools could never wake.
    assert sorted(tasks_of(custom_run)) == ["migrate", "queue-metrics", "web", "worker-bulk", "worker-fast"]
    assert len(custom_run.of_type(SERVICE)) == 4, "migrate is a task definition without a service"


@pytest.mark.parametrize("run_name", STACKS)
def test_every_task_definition_is_a_valid_register_task_definition_request(run_name: str, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    for definition in run.of_type(TASK_DEFINITION):
        assert api_errors("RegisterTaskDefinition", register_task_definition_params(definition)) == "", (
            f"{definition.name} would be refused by ECS"
        )


@pytest.mark.parametrize("run_name", STACKS)
def test_every_service_is_a_valid_create_service_request(run_name: str, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    for declared in run.of_type(SERVICE):
        assert api_errors("CreateService", create_service_params(declared)) == "", (
            f"{declared.name} is invalid"
        )


def test_each_container_runs_the_documented_command_of_its_role(prod_run: ProgramRun) -> None:
    commands = {task: container_definitions(task_definition(prod_run, task)) for task in tasks_of(prod_run)}
    assert {
        task: [container["name"] for container in containers] for task, containers in commands.items()
    } == {
        "web": ["web"],
        "migrate": ["migrate"],
        "beat": ["beat", "queue-metrics"],
        "worker-default": ["worker"],
        "worker-email": ["worker"],
    }
    assert commands["web"][0]["command"] == app_contract.web_command()
    assert commands["beat"][1]["command"] == app_contract.queue_metrics_command()
    assert commands["migrate"][0]["command"] == app_contract.migrate_command()
    assert commands["beat"][0]["command"] == app_contract.beat_command()
    assert commands["worker-default"][0]["command"] == app_contract.worker_command("default", ["default"], 4)
    assert commands["worker-email"][0]["command"] == app_contract.worker_command("email", ["email"], 2)


@pytest.mark.parametrize("run_name", STACKS)
def test_secrets_reach_every_container_only_through_secrets_manager(run_name: str, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    secret_values = [
        secret.inputs["secretString"]
        for secret in run.of_type("aws:secretsmanager/secretVersion:SecretVersion")
    ]
    for definition in run.of_type(TASK_DEFINITION):
        for container in container_definitions(definition):
            secrets = {secret["name"]: secret["valueFrom"] for secret in container["secrets"]}
            assert secrets == run.outputs["secretArns"], f"{definition.name}: wrong secrets"
            plain = environment(container)
            assert not set(plain) & set(app_contract.SECRET_VARIABLES), (
                f"{definition.name} leaks a secret name"
            )
            leaked = [value for value in plain.values() for secret in secret_values if secret in value]
            assert not leaked, f"{definition.name} has a secret value in its environment"


@pytest.mark.parametrize("run_name", STACKS)
def test_every_task_logs_to_its_own_group_with_the_stack_retention(run_name: str, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    retention = {"dev_run": 14, "prod_run": 365, "ephemeral_run": 7, "custom_run": 7}[run_name]
    groups = {group.inputs["name"]: group for group in run.of_type(LOG_GROUP)}
    assert {group.inputs["retentionInDays"] for group in groups.values()} == {retention}
    for task in tasks_of(run):
        for container in container_definitions(task_definition(run, task)):
            options = container["logConfiguration"]["options"]
            assert container["logConfiguration"]["logDriver"] == "awslogs"
            assert options["awslogs-group"] == run.outputs["logGroupNames"][task]
            assert options["awslogs-group"] in groups
            assert options["awslogs-stream-prefix"] == container["name"]
    assert len(set(run.outputs["logGroupNames"].values())) == len(tasks_of(run))


def test_every_container_is_non_root_read_only_with_a_writable_tmp(prod_run: ProgramRun) -> None:
    for task in tasks_of(prod_run):
        definition = task_definition(prod_run, task)
        volumes = {volume["name"] for volume in definition.inputs["volumes"]}
        for container in container_definitions(definition):
            where = f"{task}/{container['name']}"
            assert container["user"] == app_contract.APP_USER, where
            assert container["readonlyRootFilesystem"] is True, where
            tmpfs = container["linuxParameters"]["tmpfs"]
            assert [mount["containerPath"] for mount in tmpfs] == ["/tmp"], where
            assert container["linuxParameters"]["initProcessEnabled"] is True, where
            assert {mount["sourceVolume"] for mount in container["mountPoints"]} == volumes, where


def test_workers_get_the_configured_stop_timeout_and_heartbeat_health_checks(prod_run: ProgramRun) -> None:
    [worker] = container_definitions(task_definition(prod_run, "worker-default"))
    [beat, _metrics] = container_definitions(task_definition(prod_run, "beat"))
    [web] = container_definitions(task_definition(prod_run, "web"))
    assert worker["stopTimeout"] == 120
    assert environment(worker)[app_contract.CELERY_WORKER_STOP_TIMEOUT] == "120"
    assert app_contract.WORKER_HEARTBEAT_FILE in worker["healthCheck"]["command"][1]
    assert app_contract.BEAT_HEARTBEAT_FILE in beat["healthCheck"]["command"][1]
    assert web["portMappings"] == [{"containerPort": app_contract.CONTAINER_PORT, "protocol": "tcp"}]


@pytest.mark.parametrize("run_name", STACKS)
def test_every_task_size_is_one_fargate_accepts(run_name: str, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    for definition in run.of_type(TASK_DEFINITION):
        cpu, memory = int(definition.inputs["cpu"]), int(definition.inputs["memory"])
        assert is_valid_task_size(cpu, memory), f"{definition.name}: Fargate refuses {cpu}/{memory}"


def test_task_sizes_and_architecture_come_from_the_config(
    prod_run: ProgramRun, custom_run: ProgramRun
) -> None:
    web = task_definition(prod_run, "web").inputs
    assert (web["cpu"], web["memory"]) == ("512", "1024")
    assert web["runtimePlatform"] == {"operatingSystemFamily": "LINUX", "cpuArchitecture": "X86_64"}
    fast = task_definition(custom_run, "worker-fast").inputs
    assert (fast["cpu"], fast["memory"]) == ("1024", "2048")
    assert fast["runtimePlatform"]["cpuArchitecture"] == "ARM64"


def test_every_task_uses_the_image_by_digest(dev_run: ProgramRun) -> None:
    image_ref = dev_run.outputs["imageRef"]
    assert "@sha256:" in image_ref
    for definition in dev_run.of_type(TASK_DEFINITION):
        assert {container["image"] for container in container_definitions(definition)} == {image_ref}


@pytest.mark.parametrize("run_name", ["dev_run", "prod_run"])
def test_task_and_execution_roles_are_separate_and_least_privilege(run_name: str, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    repository_arn = run.one("aws:ecr/repository:Repository").state["arn"]
    for task in tasks_of(run):
        definition = task_definition(run, task).inputs
        assert definition["taskRoleArn"] != definition["executionRoleArn"]
        execution = {statement["Sid"]: statement for statement in policy_statements(run, f"{task}-execution")}
        assert execution["ReadTaskSecrets"]["Action"] == "secretsmanager:GetSecretValue"
        assert sorted(execution["ReadTaskSecrets"]["Resource"]) == sorted(run.outputs["secretArns"].values())
        assert execution["PullAppImage"]["Resource"] == repository_arn
        log_group = run.one(LOG_GROUP, f"{task}-logs").state["arn"]
        assert execution["WriteTaskLogs"]["Resource"] == f"{log_group}:log-stream:*"
        exec_policy = {
            statement["Sid"]: statement for statement in policy_statements(run, f"{task}-task-exec")
        }
        assert set(exec_policy["EcsExec"]["Action"]) == {
            "ssmmessages:CreateControlChannel",
            "ssmmessages:CreateDataChannel",
            "ssmmessages:OpenControlChannel",
            "ssmmessages:OpenDataChannel",
        }
        # The cluster records ECS Exec sessions in its audit log group: the task role may write there only.
        audit_log_group = run.one(LOG_GROUP, "exec-sessions").state["arn"]
        assert exec_policy["WriteSessionLogs"]["Resource"] == f"{audit_log_group}:*"
        assert set(exec_policy["WriteSessionLogs"]["Action"]) == {
            "logs:CreateLogStream",
            "logs:DescribeLogStreams",
            "logs:PutLogEvents",
        }


def test_no_policy_allows_every_action_and_roles_trust_only_ecs_tasks_of_the_account(
    prod_run: ProgramRun,
) -> None:
    for policy in prod_run.of_type(ROLE_POLICY):
        for statement in json.loads(policy.inputs["policy"])["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert not any(action == "*" or action.endswith(":*") for action in actions), policy.name
    # Every role is a task's, except the one RDS Enhanced Monitoring publishes with and ECS's own
    # for moving web traffic (infra/web/traffic.py, its trust policy as the ECS guide gives it).
    others = {"database-monitoring-role": "monitoring.rds", "web-traffic-ecs-role": "ecs"}
    for role in prod_run.of_type(ROLE):
        [trust] = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        service = others.get(role.name, "ecs-tasks")
        if service == "ecs":
            assert trust["Principal"] == {"Service": "ecs.amazonaws.com"}
            continue
        assert trust["Principal"] == {"Service": f"{service}.amazonaws.com"}
        assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}


@pytest.mark.parametrize("run_name", STACKS)
def test_every_service_rolls_back_allows_exec_and_runs_the_latest_platform(run_name: str, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    for declared in run.of_type(SERVICE):
        inputs = declared.inputs
        # ECS documents the circuit breaker for rolling and blue/green deployments (developer
        # guide, "Amazon ECS deployment failure detection"); alarms roll back the traffic shifts.
        strategy = (inputs.get("deploymentConfiguration") or {}).get("strategy", "ROLLING")
        if strategy in ("ROLLING", "BLUE_GREEN"):
            assert inputs["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}, declared.name
        if strategy != "ROLLING":
            assert inputs["alarms"]["enable"] and inputs["alarms"]["rollback"], declared.name
        assert inputs["enableExecuteCommand"] is True
        assert inputs["platformVersion"] == "LATEST"
        assert inputs["propagateTags"] == "SERVICE"
        assert inputs["cluster"] == run.outputs["clusterArn"]


@pytest.mark.parametrize(("run_name", "insights"), [("dev_run", "disabled"), ("prod_run", "enabled")])
def test_cluster_has_fargate_and_spot_capacity_and_insights_per_stack(
    run_name: str, insights: str, request
) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    assert run.one("aws:ecs/cluster:Cluster").inputs["settings"] == [
        {"name": "containerInsights", "value": insights}
    ]
    capacity = run.one("aws:ecs/clusterCapacityProviders:ClusterCapacityProviders").inputs
    assert capacity["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]


def test_web_service_serves_the_target_group_and_waits_until_healthy(prod_run: ProgramRun) -> None:
    web = service(prod_run, "web")
    assert web.inputs["desiredCount"] == 2, "the service starts with webMinCount tasks"
    assert web.options["ignoreChanges"] == ("desiredCount",), "web autoscaling owns the count"
    target_group = prod_run.one("aws:lb/targetGroup:TargetGroup", "web-lb-targets")
    [balanced] = web.inputs["loadBalancers"]
    assert {key: balanced[key] for key in ("targetGroupArn", "containerName", "containerPort")} == {
        "targetGroupArn": target_group.state["arn"],
        "containerName": "web",
        "containerPort": app_contract.CONTAINER_PORT,
    }
    assert web.inputs["waitForSteadyState"] is True
    for listener in prod_run.of_type("aws:lb/listener:Listener"):
        assert listener.urn in web.dependencies, "the target group must be attached to a listener first"
    assert web.inputs["capacityProviderStrategies"] == [{"capacityProvider": "FARGATE", "weight": 1}]


def test_web_and_beat_run_on_spot_only_where_the_stack_allows_it(
    dev_run: ProgramRun, prod_run: ProgramRun
) -> None:
    for run, capacity in ((dev_run, "FARGATE_SPOT"), (prod_run, "FARGATE")):
        for role in ("web", "beat"):
            assert service(run, role).inputs["capacityProviderStrategies"] == [
                {"capacityProvider": capacity, "weight": 1}
            ], f"{run.stack} {role} should run on {capacity}"


@pytest.mark.parametrize("run_name", ["dev_run", "prod_run", "custom_run"])
def test_one_worker_service_per_pool_whose_count_autoscaling_owns(run_name: str, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    pools = {
        "dev_run": [("default", 0, True)],
        "prod_run": [("default", 1, False), ("email", 1, False)],
        "custom_run": [(pool["name"], pool["minCount"], pool["spot"]) for pool in CUSTOM_POOLS],
    }[run_name]
    assert set(run.outputs["workerServiceNames"]) == {name for name, _, _ in pools}
    for name, min_count, spot in pools:
        worker = service(run, f"worker-{name}")
        assert run.outputs["workerServiceNames"][name] == worker.state["name"]
        assert worker.inputs["desiredCount"] == min_count
        assert worker.options["ignoreChanges"] == ("desiredCount",)
        assert worker.inputs["capacityProviderStrategies"] == [
            {"capacityProvider": "FARGATE_SPOT" if spot else "FARGATE", "weight": 1}
        ]
        assert "loadBalancers" not in worker.inputs


def test_exactly_one_beat_and_the_old_one_stops_before_the_new_one_starts(prod_run: ProgramRun) -> None:
    beat = service(prod_run, "beat")
    assert beat.inputs["desiredCount"] == 1
    assert beat.inputs["deploymentMinimumHealthyPercent"] == 0
    assert beat.inputs["deploymentMaximumPercent"] == 100
    assert beat.inputs["availabilityZoneRebalancing"] == "DISABLED"
    assert beat.options["ignoreChanges"] == (), "nothing else may change the Beat count"
    assert prod_run.outputs["beatServiceName"] == beat.state["name"]


def test_beat_can_be_turned_off(custom_run: ProgramRun) -> None:
    assert not [declared for declared in custom_run.of_type(SERVICE) if "beat" in declared.name]
    assert custom_run.outputs["beatServiceName"] is None
