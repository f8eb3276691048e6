"""The app as real processes, started the way ECS starts its containers.

Each process runs a container's command from the task definition, from `app/` (the image's
/app), with the container's variable names. Values are the task definition's, except:
- `secret_values`: the secrets (Secrets Manager on AWS) point at the throwaway local services and
  the recording SMTP server;
- `AWS_ONLY_VALUES`: values that only make sense on AWS;
- `SHORT_TIMINGS`: time limits and timeouts shortened so that each fault resolves in seconds;
- `boundary_variables`: what points the processes at the local stand-ins for the outside world
  (AWS endpoint and credentials, bind address).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests

from infra import app_contract
from tests.app.app_processes import APP_DIR, free_port
from tests.e2e.mail import HoldingSMTPServer
from tests.e2e.services import ThrowawayPostgres, ThrowawayRedis, wait_until
from tests.e2e.task_definitions import ContainerSpec, StackContainers

# Values replacing the task definition's for every container that has the variable.
AWS_ONLY_VALUES = {
    # The ALB's DNS name (and the custom domain) on AWS; the processes are reached on loopback here.
    app_contract.DJANGO_ALLOWED_HOSTS: "127.0.0.1,localhost",
}
SHORT_TIMINGS = {
    # A task stopped at shutdown still waits for the SMTP timeout (EMAIL_TIMEOUT, 10 s) before its
    # message goes back, so the soft limit must come later than that, as it does in production.
    app_contract.CELERY_TASK_SOFT_TIME_LIMIT: "16",
    # Closer to the soft limit than the SMTP timeout: a delivery that hangs is still cleaning up
    # when the hard limit kills it (the runaway scenario). Production leaves 30 s.
    app_contract.CELERY_TASK_TIME_LIMIT: "18",
    app_contract.CELERY_VISIBILITY_TIMEOUT: "20",
    # The worker turns its warm shutdown into a cold one 15 s before this: 2 s after SIGTERM, well
    # before a task running at SIGTERM reaches its soft limit (as 105 s vs 270 s in production).
    app_contract.CELERY_WORKER_STOP_TIMEOUT: "17",
    app_contract.PERIODIC_HEARTBEAT_SECONDS: "2",
    app_contract.QUEUE_METRICS_INTERVAL_SECONDS: "1",
}
# kombu's sweep for messages of dead workers runs this often (unacked_restore_interval, app settings).
UNACKED_RESTORE_INTERVAL_SECONDS = 10
STARTUP_TIMEOUT_SECONDS = 60
HTTP_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class StopResult:
    seconds: float  # from SIGTERM to exit
    killed: bool  # True if the stop timeout expired and the process group was SIGKILLed


class Container:
    """One role's process standing in for a container: a process group of its own.

    As on ECS (with its init process), SIGTERM reaches the main process, while SIGKILL at the
    stop timeout, an OOM kill or a Spot reclaim ends every process of the container at once.
    """

    def __init__(self, label: str, spec: ContainerSpec, environment: Mapping[str, str], log_dir: Path):
        self.label = label
        self.spec = spec
        self.log_path = log_dir / f"{label}.log"
        self.terminated_at: float | None = None
        with self.log_path.open("wb") as log_file:
            self.popen = subprocess.Popen(
                list(spec.command), cwd=APP_DIR, env=dict(environment), stdout=log_file,
                stderr=subprocess.STDOUT, start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def describe(self) -> str:
        tail = "\n".join(self.output().splitlines()[-40:])
        command = " ".join(self.spec.command)
        return f"{self.label} ({command}), exit code {self.popen.poll()}, log tail:\n{tail}"

    def is_running(self) -> bool:
        return self.popen.poll() is None

    def wait_for_log(self, text: str, timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
        wait_until(
            lambda: text in self.output() or not self.is_running(),
            timeout, f"{self.label} never logged {text!r}", [self],
        )
        assert self.is_running(), f"{self.label} exited; {self.describe()}"

    def kill(self) -> None:
        """SIGKILL every process of the container (OOM kill, Spot reclaim, host loss)."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.popen.wait(10)

    def terminate(self) -> None:
        """What ECS does first when it stops a task: SIGTERM to the main process."""
        self.terminated_at = time.monotonic()
        self.popen.send_signal(signal.SIGTERM)

    def wait_stopped(self, stop_timeout: float) -> StopResult:
        """What ECS does next: wait up to the stop timeout, then SIGKILL the whole container."""
        assert self.terminated_at is not None, f"{self.label} was never sent SIGTERM"
        remaining = self.terminated_at + stop_timeout - time.monotonic()
        try:
            self.popen.wait(max(remaining, 0))
            killed = False
        except subprocess.TimeoutExpired:
            killed = True
        self.kill()  # also ends anything the main process left behind, as the container's end would
        return StopResult(seconds=time.monotonic() - self.terminated_at, killed=killed)

    def stop_like_ecs(self, stop_timeout: float) -> StopResult:
        self.terminate()
        return self.wait_stopped(stop_timeout)

    def close(self) -> None:
        if self.is_running():
            self.stop_like_ecs(stop_timeout=15)
        self.kill()


class AppStack:
    """The throwaway services, the SMTP boundary and the role processes of one stack."""

    def __init__(
        self,
        containers: StackContainers,
        redis_server: ThrowawayRedis,
        postgres: ThrowawayPostgres,
        smtp: HoldingSMTPServer,
        work_dir: Path,
        aws_endpoint: str,
    ) -> None:
        self.containers = containers
        self.redis = redis_server
        self.postgres = postgres
        self.smtp = smtp
        self.log_dir = work_dir
        self.web_port = free_port()
        self.aws_endpoint = aws_endpoint
        self.processes: list[Container] = []
        self._labels: dict[str, int] = {}

    # --- environment --------------------------------------------------------------------------
    def secret_values(self) -> dict[str, str]:
        return {
            app_contract.DATABASE_URL: self.postgres.url,
            app_contract.REDIS_URL: self.redis.url(),
            app_contract.DJANGO_SECRET_KEY: "e2e-not-secret-" + "k" * 50,
            app_contract.EMAIL_URL: f"smtp://127.0.0.1:{self.smtp.port}",
        }

    def boundary_variables(self, spec: ContainerSpec) -> dict[str, str]:
        variables = {
            # ECS gives the task role's credentials; here AWS calls go to a local moto server.
            "AWS_ENDPOINT_URL": self.aws_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
        if spec.role == "web":
            # The container owns port 8000; on a shared machine the web process gets a free port.
            variables["GUNICORN_CMD_ARGS"] = f"--bind 127.0.0.1:{self.web_port}"
        return variables

    def environment_for(self, spec: ContainerSpec) -> dict[str, str]:
        secrets = self.secret_values()
        unknown_secrets = set(spec.secret_names) - set(secrets)
        assert not unknown_secrets, (
            f"{spec.family}/{spec.name} needs secrets the harness has no value for: {unknown_secrets}"
        )
        overrides = {**AWS_ONLY_VALUES, **SHORT_TIMINGS}
        return {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(self.log_dir),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            **spec.environment,
            **{name: value for name, value in overrides.items() if name in spec.environment},
            **{name: secrets[name] for name in spec.secret_names},
            **self.boundary_variables(spec),
        }

    # --- processes ----------------------------------------------------------------------------
    def start(self, spec: ContainerSpec, label: str | None = None) -> Container:
        label = label or spec.role
        self._labels[label] = self._labels.get(label, 0) + 1
        unique_label = f"{label}-{self._labels[label]}"
        process = Container(unique_label, spec, self.environment_for(spec), self.log_dir)
        self.processes.append(process)
        return process

    def migrate(self) -> None:
        migrate = self.start(self.containers.one("migrate"))
        code = migrate.popen.wait(STARTUP_TIMEOUT_SECONDS)
        assert code == 0, f"the migrate task failed; {migrate.describe()}"

    def start_web(self) -> Container:
        web = self.start(self.containers.one("web"))
        wait_until(
            lambda: self.get(app_contract.LIVENESS_PATH, quiet=True) == 200 or not web.is_running(),
            STARTUP_TIMEOUT_SECONDS, f"web never answered {app_contract.LIVENESS_PATH}", [web],
        )
        assert web.is_running(), web.describe()
        return web

    def start_worker(self) -> Container:
        worker = self.start(self.worker_spec())
        worker.wait_for_log("ready.")
        return worker

    def worker_spec(self) -> ContainerSpec:
        """The worker pool that serves the email queue (the one the scenarios exercise)."""
        pools = [
            spec for spec in self.containers.by_role("worker")
            if app_contract.EMAIL_QUEUE in spec.option("--queues").split(",")
        ]
        assert len(pools) == 1, f"expected one worker pool serving {app_contract.EMAIL_QUEUE}: {pools}"
        return pools[0]

    def start_queue_metrics(self) -> Container:
        publisher = self.start(self.containers.one("queue-metrics"))
        publisher.wait_for_log("publishing queue metrics")
        return publisher

    def stop_all(self) -> None:
        for process in self.processes:
            process.close()
        self.processes.clear()

    # --- HTTP -----------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def get(self, path: str, quiet: bool = False) -> int | None:
        try:
            return requests.get(self.base_url + path, timeout=HTTP_TIMEOUT_SECONDS).status_code
        except requests.RequestException:
            if quiet:
                return None
            raise

    def sign_up(self, emails: list[str], parallel: int = 8) -> None:
        """POST each signup to the API; every one must be accepted (202)."""
        with requests.Session() as session, ThreadPoolExecutor(parallel) as pool:
            responses = list(pool.map(lambda email: self._post_signup(session, email), emails))
        refused = [(email, status, body) for email, (status, body) in zip(emails, responses, strict=True)
                   if status != 202]
        assert not refused, f"{len(refused)} of {len(emails)} signups were not accepted, e.g. {refused[:3]}"

    def _post_signup(self, session: requests.Session, email: str) -> tuple[int, str]:
        response = session.post(f"{self.base_url}/api/signups", json={"email": email},
                                timeout=HTTP_TIMEOUT_SECONDS)
        return response.status_code, response.text[:300]

    # --- observable state -----------------------------------------------------------------------
    def signup_statuses(self) -> dict[str, str]:
        with self.postgres.connect() as connection:
            rows = connection.execute("SELECT lower(email), status FROM signups_signup").fetchall()
        return dict(rows)

    def signup_attempts(self) -> dict[str, int]:
        with self.postgres.connect() as connection:
            rows = connection.execute("SELECT lower(email), attempts FROM signups_signup").fetchall()
        return dict(rows)

    def broker_backlog(self) -> dict[str, int]:
        """Messages waiting per queue, and messages delivered but not acknowledged (in flight)."""
        client = self.redis.client()
        backlog = {queue: client.llen(queue) for queue in app_contract.QUEUES}
        backlog["unacked"] = client.hlen("unacked")
        return backlog

    def reset(self) -> None:
        """Start a scenario from nothing: no rows, no messages, no recorded mail."""
        assert not any(p.is_running() and p.spec.role == "worker" for p in self.processes), (
            "reset needs every worker stopped"
        )
        self.redis.client().flushdb()
        with self.postgres.connect() as connection:
            connection.execute("TRUNCATE signups_signup, signups_periodicrun")
        self.smtp.reset()
