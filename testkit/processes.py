"""Real app processes for tests and benchmarks: gunicorn, celery worker and beat, a throwaway redis-server.

Every process runs a role command from infra/app_contract.py, from app/, with the environment a
container gets. Output goes to a log file that failing assertions print. Nothing here sleeps
blindly: `wait_for` polls an observable condition until a deadline.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

from infra import app_contract

REPO_ROOT = Path(__file__).resolve().parents[1]
APP_DIR = REPO_ROOT / "app"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"

T = TypeVar("T")


def wait_for(condition: Callable[[], T | None], timeout: float, message: str, interval: float = 0.1) -> T:
    """Poll `condition` until it returns something truthy; fail with `message` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} (waited {timeout} s, last value {result!r})")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def django_database_url(settings_dict: Mapping[str, object]) -> str:
    """A DATABASE_URL for a Django connection's settings (e.g. pytest-django's test database)."""
    user = quote(str(settings_dict.get("USER") or ""), safe="")
    password = quote(str(settings_dict.get("PASSWORD") or ""), safe="")
    credentials = f"{user}:{password}@" if password else f"{user}@" if user else ""
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{credentials}{host}:{port}/{settings_dict['NAME']}"


def container_env(database_url: str, redis_url: str, **overrides: str) -> dict[str, str]:
    """The environment of a production container, pointed at the given services."""
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": tempfile.gettempdir(),
        "LANG": "C.UTF-8",
        app_contract.DJANGO_SETTINGS_MODULE: app_contract.PRODUCTION_SETTINGS,
        app_contract.DATABASE_URL: database_url,
        app_contract.REDIS_URL: redis_url,
        app_contract.DJANGO_SECRET_KEY: "test-secret-key-" + "x" * 50,
        app_contract.DJANGO_ALLOWED_HOSTS: "app.example.com,localhost,127.0.0.1",
        # Every request comes from this machine's one address; the per-client limit is tested apart.
        app_contract.SIGNUP_RATE_LIMIT: "100000/m",
        app_contract.SIGNUP_PROCESS_RATE_LIMIT: "100000",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(overrides)
    return env


class AppProcess:
    """One child process with its output in a log file; always stopped by the fixture that made it.

    `log_path` defaults to a new temporary file; `own_process_group` starts it in a session of its
    own, so that everything it starts can be signalled at once.
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        env: Mapping[str, str],
        cwd: Path = APP_DIR,
        *,
        log_path: Path | None = None,
        own_process_group: bool = False,
    ):
        self.name = name
        self.command = list(command)
        self.log_path = log_path or Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log")[1])
        self._log_file = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            self.command,
            cwd=cwd,
            env=dict(env),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=own_process_group,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def describe(self) -> str:
        tail = "\n".join(self.output().splitlines()[-60:])
        return f"{self.name} ({' '.join(self.command)}), exit code {self.popen.poll()}, output:\n{tail}"

    def is_running(self) -> bool:
        return self.popen.poll() is None

    def send_signal(self, sig: int) -> None:
        self.popen.send_signal(sig)

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still running after {timeout} s: {self.describe()}") from None

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.is_running():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log_file.close()


def start_worker(env: Mapping[str, str], queues: Sequence[str], concurrency: int = 1) -> AppProcess:
    worker = AppProcess("worker", app_contract.worker_command("test", queues, concurrency), env)
    wait_for(
        lambda: "ready." in worker.output() or not worker.is_running(),
        timeout=30,
        message="the celery worker did not become ready",
    )
    assert worker.is_running(), worker.describe()
    return worker


def start_beat(env: Mapping[str, str]) -> AppProcess:
    return AppProcess("beat", app_contract.beat_command(), env)


def start_web(env: Mapping[str, str], port: int) -> AppProcess:
    # GUNICORN_CMD_ARGS moves the bind address without changing the contract command.
    env = {**env, "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{port} --workers 1 --threads 4"}
    web = AppProcess("web", app_contract.web_command(), env)
    wait_for(
        lambda: port_open(port) or not web.is_running(),
        timeout=30,
        message="gunicorn did not start listening",
    )
    assert web.is_running(), web.describe()
    return web


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class RedisServer:
    """A throwaway redis-server on a free port, for tests that stop and restart Redis."""

    def __init__(self, *options: str) -> None:
        self.port = free_port()
        self.options = list(options)  # more redis-server options, e.g. "--maxmemory", "1"
        self.process: AppProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", *self.options]
        self.process = AppProcess("redis-server", command, os.environ, cwd=Path(tempfile.gettempdir()))
        wait_for(lambda: port_open(self.port), timeout=10, message="redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            wait_for(lambda: not port_open(self.port), timeout=10, message="redis-server did not stop")
            self.process = None
