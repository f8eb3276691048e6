"""Fixtures of the image tests: a private Docker engine, the app image built on a base made from the
Debian archive, the dev stack's containers as the Pulumi program declares them, and the local
stand-ins they are pointed at (a database of their own, Redis, moto for AWS).

Where the image cannot be built (no root, no docker.io or debootstrap, no Debian archive or PyPI,
no engine can start) the tests are skipped with the reason; with CI=true they fail instead, so CI
can never pass without running them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis
from moto.server import ThreadedMotoServer
from psycopg import sql

from dockerkit.app_image import build_app_image
from dockerkit.debian_base import default_cache_directory, make_debian_base
from dockerkit.engine import EngineError, PrivateEngine, private_engine
from dockerkit.prerequisites import missing_prerequisites
from infra import app_contract
from tests.e2e.task_definitions import StackContainers, stack_containers
from tests.image.deployment import Deployment, RunningContainer, Web, start_web

# The dev stack, with settings that let each behaviour show in seconds. They go through the program,
# so the task definitions themselves carry them (stop timeout and the matching variable agree).
IMAGE_TEST_STACK = (
    "dev",
    (
        # Workers then get EMAIL_URL as a secret, as a stack with SMTP configured does.
        ("emailUrl", "smtp+tls://user:password@smtp.example.com:587"),
        # A stopping worker gives up on running tasks 15 s before this: 5 s after SIGTERM.
        ("workerStopTimeoutSeconds", "20"),
        ("periodicHeartbeatSeconds", "2"),
    ),
)


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true, so the image tests must run, but they cannot here: {reason}", pytrace=False)
    pytest.skip(f"the app image cannot be built and run here: {reason}")


@pytest.fixture(scope="session")
def engine() -> Iterator[PrivateEngine]:
    reasons = missing_prerequisites()
    if reasons:
        unavailable("; ".join(reasons))
    with contextlib.ExitStack() as stack:
        try:
            started = stack.enter_context(private_engine())
        except EngineError as error:
            unavailable(f"no Docker engine starts on this machine: {error}")
        yield started


@pytest.fixture(scope="session")
def base_image(engine: PrivateEngine) -> str:
    return make_debian_base(engine, default_cache_directory())


@pytest.fixture(scope="session")
def app_image(engine: PrivateEngine, base_image: str) -> str:
    return build_app_image(engine, base_image).tag


@pytest.fixture(scope="session")
def image_containers() -> StackContainers:
    return stack_containers(*IMAGE_TEST_STACK)


@pytest.fixture(scope="session")
def image_database_url(database_url: str) -> Iterator[str]:
    """A database of the image tests' own on the PostgreSQL server of DATABASE_URL, dropped after."""
    server = urlsplit(database_url)
    name = f"image_test_{secrets.token_hex(4)}"
    maintenance = urlunsplit(server._replace(path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield urlunsplit(server._replace(path=f"/{name}"))
    with psycopg.connect(maintenance, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def aws_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per AWS call otherwise
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def broker(redis_url: str) -> Iterator[redis.Redis]:
    """The Redis of REDIS_URL, without the app's queues, in-flight messages or Beat schedule and lock
    before and after the module."""
    client = redis.Redis.from_url(redis_url)

    def clear() -> None:
        keys = [*app_contract.QUEUES, "unacked", "unacked_index", *client.keys("redbeat:*")]
        client.delete(*keys)

    clear()
    yield client
    clear()
    client.close()


@pytest.fixture(scope="session")
def deployment(
    engine: PrivateEngine,
    app_image: str,
    image_containers: StackContainers,
    image_database_url: str,
    redis_url: str,
    aws_endpoint: str,
) -> Deployment:
    return Deployment(engine, app_image, image_containers, image_database_url, redis_url, aws_endpoint)


@pytest.fixture(scope="session")
def migration(deployment: Deployment) -> Iterator[RunningContainer]:
    """The migrate task, run to its end before anything else starts (as the release phase does)."""
    migrate = deployment.start(deployment.containers.one("migrate"))
    migrate.wait_exit()
    yield migrate
    migrate.remove()


@pytest.fixture(scope="module")
def web(deployment: Deployment, migration: RunningContainer) -> Iterator[Web]:
    assert migration.wait_exit() == 0, f"the migrate task failed; {migration.describe()}"
    web = start_web(deployment, deployment.containers.one("web"))
    assert web.container.is_running(), web.container.describe()
    yield web
    web.container.remove()
