"""Every role of the dev stack as a container of the real image, started from its task definition.

migrate, web, a worker, and the Beat task (Beat and the queue-metrics publisher, sharing the task's
volumes) run on the private engine against this machine's PostgreSQL and Redis, a recording SMTP
server and moto standing in for CloudWatch and ECS.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import boto3
import psycopg
import pytest
import redis

from infra import app_contract
from testkit.processes import wait_for
from testkit.smtp import SMTPServer
from tests.image.deployment import (
    POLL_SECONDS,
    Deployment,
    RunningContainer,
    Web,
    email_worker,
    post_signup,
    start_web,
)

pytestmark = pytest.mark.image

HEARTBEAT_TASK = "signups.tasks.record_heartbeat"
# Docker runs the first health check one interval (the task definition's 30 s) after the start.
HEALTHY_TIMEOUT_SECONDS = 75
# A static file Django's admin ships, collected into the image at build time.
STATIC_FILE = "/static/admin/css/base.css"


@pytest.fixture(scope="module")
def smtp() -> Iterator[SMTPServer]:
    with SMTPServer() as server:
        yield server


@pytest.fixture(scope="module")
def worker(
    deployment: Deployment, migration: RunningContainer, broker: redis.Redis, smtp: SMTPServer
) -> Iterator[RunningContainer]:
    container = deployment.start(
        email_worker(deployment.containers), email_url=f"smtp://127.0.0.1:{smtp.port}"
    )
    container.wait_for_log("ready.")
    yield container
    container.remove()


@pytest.fixture(scope="module")
def beat_task(
    deployment: Deployment, migration: RunningContainer, broker: redis.Redis
) -> Iterator[dict[str, RunningContainer]]:
    """Beat and its queue-metrics sidecar: the containers of one task, sharing its volumes."""
    beat_spec = deployment.containers.one("beat")
    task = deployment.new_task("beat")
    started = {
        spec.role: deployment.start(spec, task=task)
        for spec in deployment.containers.containers
        if spec.family == beat_spec.family
    }
    yield started
    for container in started.values():
        container.remove()


def query(database_url: str, statement: str, *parameters: object) -> list[tuple]:
    with psycopg.connect(database_url) as connection:
        return connection.execute(statement, parameters).fetchall()


def test_the_migrate_task_exits_0_with_every_migration_applied(
    migration: RunningContainer, image_database_url: str
) -> None:
    assert migration.wait_exit() == 0, migration.describe()
    applied = {app for (app,) in query(image_database_url, "SELECT app FROM django_migrations")}
    assert {"signups", "auth", "sessions"} <= applied, applied


def test_web_answers_liveness_readiness_and_a_static_file(web: Web) -> None:
    assert web.get(app_contract.LIVENESS_PATH).json() == {"status": "ok"}
    ready = web.get(app_contract.READINESS_PATH)
    assert ready.status_code == 200, ready.text
    static = web.get(STATIC_FILE)
    assert static.status_code == 200, f"{STATIC_FILE}: {static.status_code}; {web.container.describe()}"
    assert static.headers["Content-Type"].startswith("text/css")


def test_a_signup_posted_to_web_is_sent_by_the_worker(
    web: Web, worker: RunningContainer, smtp: SMTPServer
) -> None:
    signup_id = post_signup(web, "ada@example.com")

    wait_for(
        lambda: "ada@example.com" in smtp.recipients(),
        30,
        f"the worker container sent no welcome email; {worker.describe()}",
    )
    assert web.get(f"/api/signups/{signup_id}").json()["status"] == "sent"


def test_beat_fires_its_periodic_task(
    beat_task: dict[str, RunningContainer], worker: RunningContainer, image_database_url: str
) -> None:
    runs = "SELECT count(*) FROM signups_periodicrun WHERE task_name = %s"
    wait_for(
        lambda: query(image_database_url, runs, HEARTBEAT_TASK)[0][0] > 0,
        60,
        f"no {HEARTBEAT_TASK} run was recorded; {beat_task['beat'].describe()}\n{worker.describe()}",
        interval=POLL_SECONDS,
    )


def test_the_queue_metrics_publisher_reports_to_cloudwatch(
    beat_task: dict[str, RunningContainer], aws_endpoint: str
) -> None:
    publisher = beat_task["queue-metrics"]
    publisher.wait_for_log("publishing queue metrics")
    cloudwatch = boto3.client(
        "cloudwatch",
        region_name=publisher.spec.environment[app_contract.AWS_REGION],
        endpoint_url=aws_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    namespace = publisher.spec.environment[app_contract.QUEUE_METRICS_NAMESPACE]
    wait_for(
        lambda: cloudwatch.list_metrics(Namespace=namespace)["Metrics"],
        30,
        f"nothing was published to {namespace}; {publisher.describe()}",
        interval=POLL_SECONDS,
    )


def test_every_process_runs_as_the_image_user(
    web: Web, worker: RunningContainer, beat_task: dict[str, RunningContainer]
) -> None:
    for container in (web.container, worker, *beat_task.values()):
        processes = container.process_users()
        assert processes, container.describe()
        assert all(uid == app_contract.APP_UID for uid, _ in processes), (container.name, processes)


def test_nothing_outside_tmp_is_writable(web: Web) -> None:
    probe = (
        "import sys\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        open(path, 'w').close()\n"
        "        print(path, 'written')\n"
        "    except OSError as error:\n"
        "        print(path, error.strerror)\n"
    )
    expected = {
        f"{app_contract.APP_WORKDIR}/probe": "Read-only file system",
        "/probe": "Read-only file system",
        "/opt/venv/probe": "Read-only file system",
        f"{app_contract.WRITABLE_TMP}/probe": "written",
    }
    result = web.container.exec("python", "-c", probe, *expected)

    outcomes = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert outcomes == expected, result.stdout + result.stderr


def test_worker_and_beat_pass_their_container_health_checks(
    worker: RunningContainer, beat_task: dict[str, RunningContainer]
) -> None:
    for container in (worker, beat_task["beat"]):
        wait_for(
            lambda container=container: container.health() == "healthy",
            HEALTHY_TIMEOUT_SECONDS,
            f"{container.name} is not healthy; {container.describe()}",
            interval=POLL_SECONDS,
        )


def test_control_web_without_its_tmpfs_does_not_start(
    deployment: Deployment, migration: RunningContainer
) -> None:
    """The tmpfs of the task definition is what makes the read-only root file system work: the same
    web container without it must fail, or the tests above could not tell."""
    spec = dataclasses.replace(deployment.containers.one("web"), tmpfs=())
    web = start_web(deployment, spec)
    try:
        assert not web.answers(), "web answered without a writable /tmp"
        assert web.container.wait_exit() != 0, web.container.describe()
        assert "Read-only file system" in web.container.logs(), web.container.describe()
    finally:
        web.container.remove()
