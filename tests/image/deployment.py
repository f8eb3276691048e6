"""The app image's containers, started on the private engine the way ECS starts them.

Each container runs with the `docker run` arguments that dockerkit.ecs_run derives from its ECS
container definition, as the Pulumi program declares it. Values are the task definition's, except:
- the secrets (Secrets Manager on AWS) point at this machine's PostgreSQL and Redis and at a
  recording SMTP server;
- the allowed hosts (the ALB's name on AWS) are the loopback names;
- boundary variables point AWS calls at a local moto server and, since every container shares the
  host's network here, move web's port to a free one.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

import requests

from dockerkit.ecs_run import docker_run_arguments
from dockerkit.engine import PrivateEngine
from infra import app_contract
from testkit.processes import free_port, wait_for
from tests.e2e.stack import AWS_ONLY_VALUES
from tests.e2e.task_definitions import ContainerSpec, StackContainers

STARTUP_TIMEOUT_SECONDS = 60
# Each look at a container runs the docker client: poll gently on a 2-core machine.
POLL_SECONDS = 0.5
HTTP_TIMEOUT_SECONDS = 10
# Stands in for EMAIL_URL in containers that never send email.
NO_MAIL_SERVER = "smtp://127.0.0.1:9"


class RunningContainer:
    """One container on the private engine; failures quote its state and log tail."""

    def __init__(self, engine: PrivateEngine, name: str, spec: ContainerSpec) -> None:
        self.engine = engine
        self.name = name
        self.spec = spec

    def state(self) -> dict[str, Any]:
        return json.loads(self.engine.run("inspect", "--format={{json .State}}", self.name).stdout)

    def is_running(self) -> bool:
        return bool(self.state()["Running"])

    def logs(self) -> str:
        result = self.engine.run("logs", self.name, check=False)
        return result.stdout + result.stderr

    def describe(self) -> str:
        state = self.state()
        tail = "\n".join(self.logs().splitlines()[-40:])
        return (
            f"container {self.name} ({' '.join(self.spec.command)}): status {state['Status']}, "
            f"exit code {state['ExitCode']}, log tail:\n{tail}"
        )

    def wait_for_log(self, text: str, timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
        wait_for(
            lambda: text in self.logs() or not self.is_running(),
            timeout,
            f"{self.name} never logged {text!r}",
            interval=POLL_SECONDS,
        )
        assert self.is_running(), self.describe()

    def wait_exit(self, timeout: float = STARTUP_TIMEOUT_SECONDS) -> int:
        try:
            return int(self.engine.run("wait", self.name, timeout=timeout).stdout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still running after {timeout} s; {self.describe()}") from None

    def stop(self) -> float:
        """`docker stop` with the container's own stop timeout (ECS: SIGTERM, SIGKILL at the timeout).

        Returns the seconds it took."""
        started = time.monotonic()
        self.engine.run("stop", self.name, timeout=self.spec.stop_timeout + 30)
        return time.monotonic() - started

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        """A command inside the container, as the container's user."""
        return self.engine.run("exec", self.name, *command, check=False)

    def process_users(self) -> list[tuple[int, str]]:
        """(uid, command line) of every process in the container."""
        # docker top runs ps on the host and needs its pid column to pick the container's processes.
        lines = self.engine.run("top", self.name, "-eo", "uid,pid,args").stdout.splitlines()[1:]
        return [(int(uid), args) for uid, _, args in (line.split(None, 2) for line in lines)]

    def health(self) -> str:
        return self.state().get("Health", {}).get("Status", "none")

    def remove(self) -> None:
        self.engine.run("rm", "--force", self.name, check=False)


@dataclass
class Deployment:
    """The image, the stack's containers and the local stand-ins for what they talk to."""

    engine: PrivateEngine
    image: str
    containers: StackContainers
    database_url: str
    redis_url: str
    aws_endpoint: str
    task_numbers: itertools.count = field(default_factory=itertools.count)

    def new_task(self, label: str) -> str:
        """A name for one running task, unique on the engine."""
        return f"{label}-{next(self.task_numbers)}"

    def secret_values(self, email_url: str) -> dict[str, str]:
        return {
            app_contract.DATABASE_URL: self.database_url,
            app_contract.REDIS_URL: self.redis_url,
            app_contract.DJANGO_SECRET_KEY: "image-test-not-secret-" + "k" * 50,
            app_contract.EMAIL_URL: email_url,
        }

    def overrides(self, spec: ContainerSpec, web_port: int | None) -> dict[str, str]:
        variables = {name: value for name, value in AWS_ONLY_VALUES.items() if name in spec.environment}
        variables.update(
            # ECS gives the task role's credentials; here AWS calls go to the local moto server.
            AWS_ENDPOINT_URL=self.aws_endpoint,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
        )
        if web_port is not None:
            # The container owns port 8000 on AWS; on a shared host network it takes a free one.
            variables["GUNICORN_CMD_ARGS"] = f"--bind 127.0.0.1:{web_port}"
        return variables

    def start(
        self,
        spec: ContainerSpec,
        *,
        task: str | None = None,
        email_url: str = NO_MAIL_SERVER,
        web_port: int | None = None,
    ) -> RunningContainer:
        """Run `spec` as a container of the running task `task` (containers of one task share its
        volumes), by default a task of its own."""
        task = task or self.new_task(spec.name)
        name = f"{task}-{spec.name}"
        arguments = docker_run_arguments(
            spec,
            image=self.image,
            name=name,
            task=task,
            secret_values=self.secret_values(email_url),
            environment_overrides=self.overrides(spec, web_port),
        )
        self.engine.run("run", *arguments)
        return RunningContainer(self.engine, name, spec)


@dataclass
class Web:
    container: RunningContainer
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> requests.Response:
        return requests.get(self.base_url + path, timeout=HTTP_TIMEOUT_SECONDS)

    def answers(self) -> bool:
        try:
            return self.get(app_contract.LIVENESS_PATH).status_code == 200
        except requests.RequestException:
            return False


def start_web(deployment: Deployment, spec: ContainerSpec) -> Web:
    """A web container, once it answers the liveness path or has exited (the caller checks which)."""
    port = free_port()
    web = Web(deployment.start(spec, web_port=port), port)
    wait_for(
        lambda: web.answers() or not web.container.is_running(),
        STARTUP_TIMEOUT_SECONDS,
        f"web never answered {app_contract.LIVENESS_PATH} on port {port}",
        interval=POLL_SECONDS,
    )
    return web


def email_worker(containers: StackContainers) -> ContainerSpec:
    """The worker pool that serves the email queue (the welcome emails)."""
    pools = [
        spec
        for spec in containers.by_role("worker")
        if app_contract.EMAIL_QUEUE in spec.option("--queues").split(",")
    ]
    assert len(pools) == 1, f"expected one worker pool serving {app_contract.EMAIL_QUEUE}: {pools}"
    return pools[0]


def post_signup(web: Web, email: str) -> str:
    response = requests.post(
        f"{web.base_url}/api/signups", json={"email": email}, timeout=HTTP_TIMEOUT_SECONDS
    )
    assert response.status_code == 202, response.text
    return response.json()["id"]
