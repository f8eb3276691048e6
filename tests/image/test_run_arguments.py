"""The `docker run` arguments derived from ECS container definitions (pure; no engine needed).

The definitions come from infra/containers.py, the functions the Pulumi program builds its task
definitions with, parsed as the end-to-end and image tests parse the program's.
"""

from __future__ import annotations

import pytest

from dockerkit.ecs_run import docker_run_arguments
from infra import app_contract
from infra.app_contract import Role
from infra.services import containers
from tests.e2e.task_definitions import ContainerSpec, parse_container

IMAGE = "djcelery-app:local"
CONTEXT = containers.ContainerContext(
    image="123456789012.dkr.ecr.us-east-1.amazonaws.com/app@sha256:" + "0" * 64,
    environment={app_contract.LOG_LEVEL: "INFO"},
    secret_arns={
        app_contract.DATABASE_URL: "arn:aws:secretsmanager:us-east-1:123456789012:secret:database",
        app_contract.DJANGO_SECRET_KEY: "arn:aws:secretsmanager:us-east-1:123456789012:secret:key",
    },
    region="us-east-1",
)
SECRETS = {app_contract.DATABASE_URL: "postgres://127.0.0.1/app", app_contract.DJANGO_SECRET_KEY: "k" * 50}


def spec(role: str = "web", health_check: dict[str, object] | None = None) -> ContainerSpec:
    container = containers.ContainerSpec(
        role=Role(role),
        command=app_contract.web_command(),
        stop_timeout_seconds=30,
        health_check=health_check,
    )
    definition = containers.container_definition(CONTEXT, container, "/ecs/app")
    return parse_container("djcelery-dev-web", definition, containers.task_volumes())


def run_arguments(container: ContainerSpec, task: str = "task-1", **options: object) -> list[str]:
    return docker_run_arguments(
        container, image=IMAGE, name=f"{task}-{container.name}", task=task, secret_values=SECRETS, **options
    )


def options_of(arguments: list[str]) -> list[str]:
    return arguments[: arguments.index(IMAGE)]


def test_a_container_runs_as_its_definition_says() -> None:
    arguments = run_arguments(spec())

    assert arguments[arguments.index(IMAGE) :] == [IMAGE, *app_contract.web_command()]
    assert {
        "--detach",
        "--name=task-1-web",
        "--network=host",
        f"--user={app_contract.APP_USER}",
        "--read-only",
        "--init",
        f"--workdir={app_contract.APP_WORKDIR}",
        "--stop-timeout=30",
        f"--tmpfs={app_contract.WRITABLE_TMP}:rw,nosuid,nodev,mode=1777,size={containers.TMP_SIZE_MIB}m",
        "--env=LOG_LEVEL=INFO",
        "--env=DATABASE_URL=postgres://127.0.0.1/app",
        f"--env=DJANGO_SECRET_KEY={'k' * 50}",
    } <= set(options_of(arguments))


def test_every_mount_point_gets_its_task_volume() -> None:
    mounts = [option for option in run_arguments(spec()) if option.startswith("--mount=")]

    assert mounts == [
        f"--mount=type=volume,source=task-1-{volume},target={path}"
        for volume, path in containers.ECS_EXEC_PATHS.items()
    ]


def test_the_containers_of_one_task_share_its_volumes_and_other_tasks_do_not() -> None:
    def sources(task: str, role: str) -> set[str]:
        mounts = [option for option in run_arguments(spec(role), task) if option.startswith("--mount=")]
        return {mount.split("source=")[1].split(",")[0] for mount in mounts}

    assert sources("beat-1", "beat") == sources("beat-1", "queue-metrics")
    assert not sources("beat-1", "beat") & sources("beat-2", "beat")


def test_a_mount_of_anything_but_an_empty_task_volume_is_refused() -> None:
    definition = containers.container_definition(
        CONTEXT,
        containers.ContainerSpec(role=Role.WEB, command=["true"], stop_timeout_seconds=30),
        "/ecs/app",
    )
    host_volumes = [{"name": name, "host": {"sourcePath": "/srv"}} for name in containers.ECS_EXEC_PATHS]

    for volumes in ([], host_volumes):
        with pytest.raises(ValueError, match="is not an empty volume of the task"):
            run_arguments(parse_container("family", definition, volumes))


def test_every_secret_needs_a_local_value() -> None:
    with pytest.raises(ValueError, match=app_contract.DJANGO_SECRET_KEY):
        docker_run_arguments(
            spec(),
            image=IMAGE,
            name="web",
            task="task-1",
            secret_values={app_contract.DATABASE_URL: "postgres://127.0.0.1/app"},
        )


def test_overrides_replace_plain_values_and_add_others() -> None:
    arguments = run_arguments(spec(), environment_overrides={"LOG_LEVEL": "DEBUG", "AWS_ENDPOINT_URL": "x"})

    environment = [option for option in arguments if option.startswith("--env=")]
    assert "--env=LOG_LEVEL=DEBUG" in environment
    assert "--env=LOG_LEVEL=INFO" not in environment
    assert "--env=AWS_ENDPOINT_URL=x" in environment


def test_the_heartbeat_health_check_becomes_docker_health_options() -> None:
    check = containers.heartbeat_health_check(app_contract.WORKER_HEARTBEAT_FILE)

    options = options_of(run_arguments(spec("worker", health_check=check)))

    assert f"--health-cmd={check['command'][1]}" in options
    assert {
        "--health-interval=30s",
        "--health-timeout=5s",
        "--health-retries=3",
        "--health-start-period=60s",
    } <= set(options)


def test_a_definition_that_asks_for_no_hardening_gets_none() -> None:
    bare = parse_container("family", {"name": "tool", "command": ["true"]})

    options = options_of(run_arguments(bare))

    assert not [
        option
        for option in options
        if option.split("=")[0]
        in ("--user", "--read-only", "--init", "--tmpfs", "--mount", "--workdir", "--health-cmd")
    ]
