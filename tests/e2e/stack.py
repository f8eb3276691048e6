"""The app as real processes, started the way ECS starts its containers.

Each process runs a container's command from the task definition, from `app/` (the image's
/app), with the container's variable names. Values are the task definition's, except:
- `secret_values`: the secrets (Secrets Manager on AWS) point at the throwaway local services and
  the recording SMTP server;
- `AWS_ONLY_VALUES`: values that only make sense on AWS;
- `SHORT_TIMINGS`: time limits and timeouts shortened so that each fault resolves in seconds;
- `APP_SHORT_TIMINGS`: app settings the stack leaves at their default, shortened the same way;
- `APP_LOAD_LIMITS`: app limits the stack leaves at their default, raised for one web process;
- `boundary_variables`: what points the processes at the local stand-ins for the outside world
  (AWS endpoint and credentials, the ECS agent of the container's task, bind address).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests

from infra import app_contract
from testkit.ecs_agent import FakeEcsAgent
from testkit.processes import REPO_ROOT, AppProcess, free_port
from tests.e2e.mail import HoldingSMTPServer
from tests.e2e.services import ThrowawayPostgres, ThrowawayRedis, wait_until
from tests.e2e.task_definitions import ContainerSpec, StackContainers

# Values replacing the task definition's for every container that has the variable.
AWS_ONLY_VALUES = {
    # The ALB's DNS name (and the custom domain) on AWS; the processes are reached on loopback here.
    app_contract.DJANGO_ALLOWED_HOSTS: "127.0.0.1,localhost",
}
SHORT_TIMINGS = {
    # A task stopped at shutdown still waits for the SMTP timeout (EMAIL_TIMEOUT) before its
    # message goes back, so the soft limit must come later than that, as it does in production.
    app_contract.CELERY_TASK_SOFT_TIME_LIMIT: "10",
    # More than EMAIL_TIMEOUT after the soft limit (a rule the settings check): a delivery stopped by
    # the soft limit says QUIT and records its failure before the hard limit. Production: 30 s.
    app_contract.CELERY_TASK_TIME_LIMIT: "14",
    # A killed worker's message comes back after this; the attempt it had claimed is leased for the
    # hard limit plus the first retry delay (at most 15 s here), so the redelivery finds it due even
    # if the message waited seconds in a loaded worker before it started (3,270 s of slack in
    # production). test_contract checks the margin.
    app_contract.CELERY_VISIBILITY_TIMEOUT: "20",
    # The worker turns its warm shutdown into a cold one 15 s before this: 2 s after SIGTERM, well
    # before a task running at SIGTERM reaches its soft limit (as 105 s vs 270 s in production).
    app_contract.CELERY_WORKER_STOP_TIMEOUT: "17",
    app_contract.PERIODIC_HEARTBEAT_SECONDS: "2",
    app_contract.QUEUE_METRICS_INTERVAL_SECONDS: "1",
    app_contract.EMAIL_TIMEOUT: "3",
    # Retries of a failed delivery after 0.5-1, 1-2, 2-4, then 2-4 s (production: 30 s doubling up to
    # 30 min, for 24 h).
    app_contract.WELCOME_EMAIL_RETRY_BACKOFF_SECONDS: "1",
    app_contract.WELCOME_EMAIL_RETRY_MAX_DELAY_SECONDS: "4",
    app_contract.WELCOME_EMAIL_RETRY_WINDOW_SECONDS: "600",
    # Beat runs the sweep every second; a signup the broker refused is swept after 3 s (30 s / 300 s).
    app_contract.SIGNUP_SWEEP_SECONDS: "1",
    app_contract.SIGNUP_REQUEUE_AFTER_SECONDS: "3",
}
# Settings no task definition sets (the app's defaults apply on AWS), shortened for every container.
APP_SHORT_TIMINGS = {
    # A worker keeps its scale-in protection this long after its last task (production: 30 s).
    app_contract.WORKER_PROTECTION_IDLE_SECONDS: "2",
}
# One web process takes every scenario's bursts (production spreads them over tasks and their
# processes): its own signup ceiling (300 a minute by default) is raised here and tested apart
# (tests/app/test_signup_ceilings.py).
APP_LOAD_LIMITS = {app_contract.SIGNUP_PROCESS_RATE_LIMIT: "100000"}
# kombu's sweep for messages of dead workers runs this often (unacked_restore_interval, app settings).
UNACKED_RESTORE_INTERVAL_SECONDS = 10
STARTUP_TIMEOUT_SECONDS = 60
HTTP_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Answer:
    status: int
    seconds: float
    body: str


def client_address(email: str) -> str:
    """A client address per email, from the benchmarking range 198.18.0.0/15 (never routed)."""
    digest = zlib.crc32(email.encode())
    return f"198.{18 + (digest >> 16) % 2}.{(digest >> 8) % 256}.{digest % 256}"


@dataclass(frozen=True)
class StopResult:
    seconds: float  # from SIGTERM to exit
    killed: bool  # True if the stop timeout expired and the process group was SIGKILLed


class Container(AppProcess):
    """One role's process standing in for a container: a process group of its own.

    As on ECS (with its init process), SIGTERM reaches the main process, while SIGKILL at the
    stop timeout, an OOM kill or a Spot reclaim ends every process of the container at once.
    """

    def __init__(self, label: str, spec: ContainerSpec, environment: Mapping[str, str], log_dir: Path):
        super().__init__(
            label, spec.command, environment, log_path=log_dir / f"{label}.log", own_process_group=True
        )
        self.spec = spec
        self.terminated_at: float | None = None

    @property
    def label(self) -> str:
        return self.name

    def wait_for_log(self, text: str, timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
        wait_until(
            lambda: text in self.output() or not self.is_running(),
            timeout,
            f"{self.label} never logged {text!r}",
            [self],
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
        self._log_file.close()


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
        ecs_agent: FakeEcsAgent,
    ) -> None:
        self.containers = containers
        self.redis = redis_server
        self.postgres = postgres
        self.smtp = smtp
        self.log_dir = work_dir
        self.web_port = free_port()
        self.aws_endpoint = aws_endpoint
        self.ecs_agent = ecs_agent
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

    def boundary_variables(self, spec: ContainerSpec, task: str) -> dict[str, str]:
        variables = {
            # ECS gives the task role's credentials; here AWS calls go to a local moto server.
            "AWS_ENDPOINT_URL": self.aws_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            # ECS's agent in each task; here one fake agent tells the tasks apart by their label.
            app_contract.ECS_AGENT_URI: self.ecs_agent.uri(task),
        }
        if spec.role == "web":
            # The container owns port 8000; on a shared machine the web process gets a free port.
            variables["GUNICORN_CMD_ARGS"] = f"--bind 127.0.0.1:{self.web_port}"
        return variables

    def environment_for(self, spec: ContainerSpec, task: str = "task", **overrides: str) -> dict[str, str]:
        """The environment of a container of `task`; `overrides` stand for a one-off change of a task
        definition."""
        secrets = self.secret_values()
        unknown_secrets = set(spec.secret_names) - set(secrets)
        assert not unknown_secrets, (
            f"{spec.family}/{spec.name} needs secrets the harness has no value for: {unknown_secrets}"
        )
        replaced = {**AWS_ONLY_VALUES, **SHORT_TIMINGS}
        return {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(self.log_dir),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            **APP_SHORT_TIMINGS,
            **APP_LOAD_LIMITS,
            **spec.environment,
            **{name: value for name, value in replaced.items() if name in spec.environment},
            **{name: secrets[name] for name in spec.secret_names},
            **self.boundary_variables(spec, task),
            **overrides,
        }

    # --- processes ----------------------------------------------------------------------------
    def start(self, spec: ContainerSpec, label: str | None = None, **overrides: str) -> Container:
        label = label or spec.role
        self._labels[label] = self._labels.get(label, 0) + 1
        unique_label = f"{label}-{self._labels[label]}"
        environment = self.environment_for(spec, unique_label, **overrides)
        process = Container(unique_label, spec, environment, self.log_dir)
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
            STARTUP_TIMEOUT_SECONDS,
            f"web never answered {app_contract.LIVENESS_PATH}",
            [web],
        )
        assert web.is_running(), web.describe()
        return web

    def start_worker(self, include: str | None = None, **overrides: str) -> Container:
        """A worker of the email pool; `include` also imports a module of the test suite's own
        tasks (fault injection), as `celery worker --include` does."""
        spec = self.worker_spec()
        if include is not None:
            spec = dataclasses.replace(spec, command=(*spec.command, "--include", include))
            overrides = {"PYTHONPATH": str(REPO_ROOT), **overrides}
        worker = self.start(spec, **overrides)
        worker.wait_for_log("ready.")
        return worker

    def run_command(self, *arguments: str, timeout: float = STARTUP_TIMEOUT_SECONDS) -> Container:
        """A one-off `manage.py` task (infra.ops): the migrate task definition, another command."""
        command = ("python", "manage.py", *arguments)
        spec = dataclasses.replace(self.containers.one("migrate"), command=command)
        one_off = self.start(spec, label="one-off")
        code = one_off.popen.wait(timeout)
        assert code == 0, f"manage.py {' '.join(arguments)} failed; {one_off.describe()}"
        return one_off

    def worker_spec(self) -> ContainerSpec:
        """The worker pool that serves the email queue (the one the scenarios exercise)."""
        pools = [
            spec
            for spec in self.containers.by_role("worker")
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

    def sign_up(
        self, emails: list[str], parallel: int = 8, accepted: tuple[int, ...] = (202,)
    ) -> list[Answer]:
        """POST each signup to the API, each from its own client address; all must be `accepted`."""
        with requests.Session() as session, ThreadPoolExecutor(parallel) as pool:
            answers = list(pool.map(lambda email: self.post_signup(session, email), emails))
        refused = [
            (email, answer)
            for email, answer in zip(emails, answers, strict=True)
            if answer.status not in accepted
        ]
        assert not refused, f"{len(refused)} of {len(emails)} signups were not accepted, e.g. {refused[:3]}"
        return answers

    def post_signup(self, session: requests.Session, email: str, client: str | None = None) -> Answer:
        """POST one signup as the load balancer forwards it: X-Forwarded-For ends with the client's
        address (by default one per address signed up, as many users behind one ALB)."""
        client = client or client_address(email)
        started = time.monotonic()
        response = session.post(
            f"{self.base_url}/api/signups",
            json={"email": email},
            headers={"X-Forwarded-For": client},
            timeout=HTTP_TIMEOUT_SECONDS,
        )
        return Answer(response.status_code, time.monotonic() - started, response.text[:300])

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

    def email_backlog(self) -> int:
        """Welcome-email messages waiting or in flight (Beat's periodic messages left out)."""
        client = self.redis.client()
        in_flight = [json.loads(entry)[2] for entry in client.hvals("unacked")]
        return client.llen(app_contract.EMAIL_QUEUE) + in_flight.count(app_contract.EMAIL_QUEUE)

    def reset(self) -> None:
        """Start a scenario from nothing: no rows, no messages, no recorded mail."""
        assert not any(p.is_running() and p.spec.role == "worker" for p in self.processes), (
            "reset needs every worker stopped"
        )
        self.redis.client().flushdb()
        with self.postgres.connect() as connection:
            connection.execute("TRUNCATE signups_signup, signups_periodicrun")
        self.smtp.reset()
        self.ecs_agent.forget()


class Service:
    """An ECS service keeping one task of a role running.

    When the task's essential container exits (a crash, an OOM kill, Beat giving up), the service
    scheduler starts a replacement after a short delay; `replacements` counts them.
    """

    def __init__(self, start: Callable[[], Container], restart_delay: float = 1.0) -> None:
        self._start = start
        self.restart_delay = restart_delay
        self.task = start()
        self.replacements = 0
        self._stopped = threading.Event()
        self._watcher = threading.Thread(target=self._keep_running, daemon=True)
        self._watcher.start()

    def _keep_running(self) -> None:
        while not self._stopped.wait(0.2):
            if not self.task.is_running() and not self._stopped.wait(self.restart_delay):
                self.task = self._start()
                self.replacements += 1

    def stop(self) -> None:
        """Stop replacing tasks (scaling the service to zero); the tasks themselves stay."""
        self._stopped.set()
        self._watcher.join(5)
