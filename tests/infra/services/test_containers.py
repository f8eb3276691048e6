"""Container definitions per role, built from plain values and checked against the ECS API model."""

from dataclasses import replace

import pytest

from infra import app_contract
from infra.release.release import migrate_container
from infra.scheduler.scheduler import beat_container
from infra.services import containers
from infra.services.task_sizes import TaskSize
from infra.stack import StackConfig, validate
from infra.web.service import web_container
from infra.workers.config import WorkerPoolConfig
from infra.workers.pool import worker_container
from testkit.program import bare_config
from testkit.scaling_simulator import DEV_EXAMPLE
from tests.infra.services.ecs_api import api_errors, shape_errors

SECRET_ARNS = {
    name: f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{name.lower()}-AbCdEf"
    for name in app_contract.SECRET_VARIABLES
}
POOL = WorkerPoolConfig(
    name="email",
    queues=("email",),
    size=TaskSize(cpu=256, memory=512),
    spot=True,
    scaling=replace(DEV_EXAMPLE, concurrency=3),
    stop_timeout_seconds=120,
)
LOG_GROUP = "/ecs/djcelery-test/role"


@pytest.fixture(scope="module")
def config() -> StackConfig:
    return validate(bare_config("dev"))


@pytest.fixture(scope="module")
def context(config: StackConfig) -> containers.ContainerContext:
    return containers.ContainerContext(
        image="123456789012.dkr.ecr.us-east-1.amazonaws.com/app@sha256:" + "a" * 64,
        environment=containers.shared_environment(config.app_settings, ["alb.example.com"], "us-east-1"),
        secret_arns=SECRET_ARNS,
        region="us-east-1",
    )


@pytest.fixture(scope="module")
def definitions(config: StackConfig, context: containers.ContainerContext) -> dict[str, dict]:
    return {
        role: containers.container_definition(context, spec, LOG_GROUP)
        for role, spec in {
            "web": web_container(config.web),
            "worker": worker_container(POOL),
            "beat": beat_container(),
            "migrate": migrate_container(),
        }.items()
    }


@pytest.mark.parametrize("role", ["web", "worker", "beat", "migrate"])
def test_container_is_a_valid_register_task_definition_request(definitions: dict, role: str) -> None:
    definition = definitions[role]
    assert shape_errors("ContainerDefinition", definition) == ""
    request = {
        "family": f"djcelery-test-{role}",
        "containerDefinitions": [definition],
        "volumes": containers.task_volumes(),
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "256",
        "memory": "512",
    }
    assert api_errors("RegisterTaskDefinition", request) == ""
    mounted = {mount["sourceVolume"] for mount in definition["mountPoints"]}
    assert mounted == {volume["name"] for volume in containers.task_volumes()}, (
        "every mount needs a task volume"
    )


@pytest.mark.parametrize(
    ("role", "command"),
    [
        ("web", app_contract.web_command()),
        ("worker", app_contract.worker_command("email", ["email"], 3)),
        ("beat", app_contract.beat_command()),
        ("migrate", app_contract.migrate_command()),
    ],
)
def test_each_role_runs_the_documented_command_in_a_container_named_after_it(
    definitions: dict, role: str, command: list[str]
) -> None:
    assert definitions[role]["name"] == role
    assert definitions[role]["command"] == command
    assert definitions[role]["workingDirectory"] == app_contract.APP_WORKDIR


@pytest.mark.parametrize("role", ["web", "worker", "beat", "migrate"])
def test_secrets_come_only_from_secrets_manager(definitions: dict, role: str) -> None:
    definition = definitions[role]
    assert {secret["name"]: secret["valueFrom"] for secret in definition["secrets"]} == SECRET_ARNS
    names = {variable["name"] for variable in definition["environment"]}
    assert not names & set(app_contract.SECRET_VARIABLES), f"{role}: a secret is a plain environment variable"


@pytest.mark.parametrize("role", ["web", "worker", "beat", "migrate"])
def test_every_container_is_hardened_and_logs_to_its_group(definitions: dict, role: str) -> None:
    definition = definitions[role]
    assert definition["user"] == app_contract.APP_USER
    assert definition["readonlyRootFilesystem"] is True
    assert definition["essential"] is True
    assert definition["linuxParameters"]["initProcessEnabled"] is True
    [tmp] = definition["linuxParameters"]["tmpfs"]
    assert tmp["containerPath"] == app_contract.WRITABLE_TMP
    assert "mode=1777" in tmp["mountOptions"], "the non-root user must be able to write /tmp"
    assert definition["logConfiguration"] == {
        "logDriver": "awslogs",
        "options": {"awslogs-group": LOG_GROUP, "awslogs-region": "us-east-1", "awslogs-stream-prefix": role},
    }
    assert "privileged" not in definition


def test_worker_and_beat_health_checks_read_their_heartbeat_files(definitions: dict) -> None:
    for role, heartbeat in (
        ("worker", app_contract.WORKER_HEARTBEAT_FILE),
        ("beat", app_contract.BEAT_HEARTBEAT_FILE),
    ):
        check = definitions[role]["healthCheck"]
        assert check["command"][0] == "CMD-SHELL"
        assert heartbeat in check["command"][1]
        assert f"-lt {app_contract.HEARTBEAT_MAX_AGE_SECONDS}" in check["command"][1]
    assert "healthCheck" not in definitions["web"], "the ALB target group checks the web tasks"


def test_worker_stops_within_the_fargate_limit_and_web_drains_before_sigkill(
    definitions: dict, config: StackConfig
) -> None:
    assert definitions["worker"]["stopTimeout"] == 120
    web = definitions["web"]
    environment = {
        variable["name"]: int(variable["value"])
        for variable in web["environment"]
        if variable["name"].startswith("GUNICORN_")
    }
    assert environment[app_contract.GUNICORN_GRACEFUL_TIMEOUT] < web["stopTimeout"]
    assert environment[app_contract.GUNICORN_TIMEOUT] < config.web.alb_idle_timeout_seconds
    assert environment[app_contract.GUNICORN_KEEPALIVE] > config.web.alb_idle_timeout_seconds
    assert web["portMappings"] == [{"containerPort": app_contract.CONTAINER_PORT, "protocol": "tcp"}]


def test_https_turns_on_redirect_and_trusted_origins(config: StackConfig) -> None:
    http_only = containers.shared_environment(config.app_settings, ["alb.example.com"], "us-east-1")
    assert http_only[app_contract.DJANGO_SECURE_SSL_REDIRECT] == "false"
    assert app_contract.DJANGO_CSRF_TRUSTED_ORIGINS not in http_only
    https_config = replace(
        config,
        web=replace(
            config.web,
            certificate_arn="arn:aws:acm:us-east-1:123456789012:certificate/x",
            domain_name="app.example.com",
        ),
    )
    https = containers.shared_environment(
        https_config.app_settings, ["app.example.com", "alb.example.com"], "us-east-1"
    )
    assert https[app_contract.DJANGO_SECURE_SSL_REDIRECT] == "true"
    assert https[app_contract.DJANGO_ALLOWED_HOSTS] == "app.example.com,alb.example.com"
    assert (
        https[app_contract.DJANGO_CSRF_TRUSTED_ORIGINS] == "https://app.example.com,https://alb.example.com"
    )


def test_a_secret_name_in_the_environment_is_refused(context: containers.ContainerContext) -> None:
    leaky = replace(context, environment={**context.environment, app_contract.DATABASE_URL: "postgres://x"})
    with pytest.raises(
        ValueError, match=r"secrets must not be plain environment variables: \['DATABASE_URL'\]"
    ):
        containers.container_definition(leaky, migrate_container(), LOG_GROUP)
