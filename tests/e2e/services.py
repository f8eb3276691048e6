"""Throwaway Redis and PostgreSQL servers that the fault scenarios may stop, restart and lose.

Each runs on a free port with its data in a temporary directory, so restarting them never touches
the shared services of the machine. PostgreSQL refuses to run as root: when the tests run as root,
its processes run as the `postgres` OS user.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal, Protocol, TypeVar

import psycopg
import redis

from testkit.processes import free_port, port_open, wait_for

T = TypeVar("T")


class Describable(Protocol):
    def describe(self) -> str: ...


def wait_until(
    condition: Callable[[], T], timeout: float, message: str, explain: Iterable[Describable] = (),
    interval: float = 0.2,
) -> T:
    """wait_for, adding the log tails of `explain` (taken at the deadline) to the failure."""
    try:
        return wait_for(condition, timeout, message, interval)
    except AssertionError as error:
        details = "\n\n".join(process.describe() for process in explain)
        raise AssertionError(f"{error}\n{details}") from None


REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
START_TIMEOUT_SECONDS = 30
DATABASE_NAME = "app"


class ServerProcess:
    """A server child process whose output goes to a log file that failures print."""

    def __init__(self, name: str, command: list[str], log_path: Path, user: str | None = None) -> None:
        self.name = name
        self.log_path = log_path
        with log_path.open("ab") as log_file:
            self.popen = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, user=user)

    def describe(self) -> str:
        tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])
        return f"{self.name} (exit code {self.popen.poll()}):\n{tail}"

    def wait_exit(self, timeout: float) -> None:
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not exit in {timeout} s; {self.describe()}") from None

    def terminate(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


class ThrowawayRedis:
    """redis-server that can be restarted with its data intact, as a failed-over broker comes back."""

    def __init__(self, work_dir: Path) -> None:
        self.port = free_port()
        self.data_dir = work_dir / "redis"
        self.data_dir.mkdir()
        self.process: ServerProcess | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5, decode_responses=True)

    def start(self) -> None:
        # No save points: data is written only by restart_keeping_data's SHUTDOWN SAVE.
        command = [
            REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
            "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no",
            "--maxmemory-policy", "noeviction",
        ]
        self.process = ServerProcess("redis-server", command, self.data_dir.parent / "redis.log")
        wait_until(self._answers, START_TIMEOUT_SECONDS, "redis-server did not start", [self.process])

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except (redis.ConnectionError, redis.BusyLoadingError):
            return False

    def restart_keeping_data(self, down_seconds: float) -> None:
        """Save to disk, stop, stay down for `down_seconds`, start again from the saved data."""
        assert self.process is not None
        # The server closes the connection as it exits.
        with contextlib.suppress(redis.ConnectionError):
            self.client().shutdown(save=True)
        self.process.wait_exit(10)
        wait_for(lambda: not port_open(self.port), 10, "redis-server still listening after SHUTDOWN")
        time.sleep(down_seconds)  # the outage itself: the point of the scenario, not a wait for state
        self.start()

    def pause(self) -> None:
        """Half-open, as during a failover: the kernel still accepts connections, nothing answers."""
        assert self.process is not None
        self.process.popen.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.popen.send_signal(signal.SIGCONT)

    def refuse_writes(self, refusal: Literal["READONLY", "OOM"]) -> None:
        """Answer reads, refuse writes: a replica after a failover (READONLY: a replica of a master
        that never answers keeps its data), or a node full under noeviction (OOM)."""
        client = self.client()
        if refusal == "READONLY":
            client.replicaof("127.0.0.1", free_port())
        else:
            client.config_set("maxmemory", 1)

    def accept_writes(self) -> None:
        client = self.client()
        client.replicaof("NO", "ONE")
        client.config_set("maxmemory", 0)

    def connected_clients(self) -> int:
        return int(self.client().info("clients")["connected_clients"])

    def describe(self) -> str:
        """The connected clients (address, age, idle seconds, last command), for failures."""
        clients = self.client().client_list()
        lines = (f"{c['addr']} age={c['age']} idle={c['idle']} cmd={c['cmd']}" for c in clients)
        return f"redis-server, {len(clients)} clients:\n" + "\n".join(lines)

    def stop(self) -> None:
        if self.process is not None:
            self.process.popen.send_signal(signal.SIGCONT)  # a paused server cannot exit
            self.process.terminate()
            self.process = None


class ThrowawayPostgres:
    """A PostgreSQL cluster made by initdb in a temporary directory, on a free port."""

    def __init__(self, work_dir: Path) -> None:
        self.port = free_port()
        self.data_dir = work_dir / "postgres"
        self.log_path = work_dir / "postgres.log"
        self.user = "postgres" if os.geteuid() == 0 else None
        self.process: ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{DATABASE_NAME}"

    def connect(self, database: str = DATABASE_NAME) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=database, autocommit=True,
            connect_timeout=5,
        )

    def create(self) -> None:
        self.data_dir.mkdir(mode=0o700)
        if self.user is not None:
            shutil.chown(self.data_dir, self.user, self.user)
            shutil.chown(self.log_path.parent, self.user, self.user)
        subprocess.run(
            [str(POSTGRES_BIN / "initdb"), "--pgdata", str(self.data_dir), "--username", "postgres",
             "--auth", "trust", "--encoding", "UTF8", "--no-sync"],
            check=True, capture_output=True, user=self.user,
        )
        self.start()
        with self.connect("postgres") as connection:
            connection.execute(f"CREATE DATABASE {DATABASE_NAME}")

    def start(self) -> None:
        command = [
            str(POSTGRES_BIN / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.data_dir}",
            "-c", "fsync=off", "-c", "max_connections=200",
        ]
        self.process = ServerProcess("postgres", command, self.log_path, user=self.user)
        wait_until(self._answers, START_TIMEOUT_SECONDS, "postgres did not start", [self.process])

    def _answers(self) -> bool:
        try:
            with self.connect("postgres"):
                return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        """Fast shutdown: open sessions are ended, as in a failover or a maintenance restart."""
        if self.process is not None:
            self.process.popen.send_signal(2)  # SIGINT = fast shutdown
            self.process.wait_exit(30)
            self.process = None


def make_work_dir() -> Path:
    work_dir = Path(tempfile.mkdtemp(prefix="e2e-faults-"))
    work_dir.chmod(0o755)
    return work_dir
