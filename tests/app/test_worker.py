"""A real `celery worker` process (the contract's worker command, production settings)."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.test import Client

from infra import app_contract
from signups.models import Signup
from testkit.processes import AppProcess, container_env, start_worker, wait_for
from testkit.smtp import SMTPServer

pytestmark = pytest.mark.django_db(transaction=True)

# The worker gives up on running tasks 15 s (CELERY_WORKER_COLD_SHUTDOWN_MARGIN) before this.
STOP_TIMEOUT = 20
# A cancelled delivery still says QUIT to the (hung) mail server, for up to this long.
EMAIL_TIMEOUT = 2


@pytest.fixture
def worker_factory(
    test_database_url: str, redis_url: str, smtp_server: SMTPServer, tmp_path: Path, broker
) -> Iterator[Callable[[], AppProcess]]:
    workers: list[AppProcess] = []

    def start() -> AppProcess:
        env = container_env(
            test_database_url,
            redis_url,
            EMAIL_URL=f"smtp://127.0.0.1:{smtp_server.port}",
            EMAIL_TIMEOUT=str(EMAIL_TIMEOUT),
            WORKER_HEARTBEAT_FILE=str(tmp_path / "worker-heartbeat"),
            **{app_contract.CELERY_WORKER_STOP_TIMEOUT: str(STOP_TIMEOUT)},
        )
        worker = start_worker(env, queues=app_contract.QUEUES)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def create_signup(email: str) -> str:
    response = Client().post("/api/signups", {"email": email}, content_type="application/json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def status_of(signup_id: str) -> dict:
    return Client().get(f"/api/signups/{signup_id}").json()


def json_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


def test_signup_moves_from_queued_to_sent_through_a_real_worker(
    worker_factory, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    worker = worker_factory()
    signup_id = create_signup("ada@example.com")

    wait_for(
        lambda: status_of(signup_id)["status"] == "sent",
        timeout=20,
        message=f"the worker did not send the welcome email; {worker.describe()}",
    )
    assert status_of(signup_id)["attempts"] == 1
    assert smtp_server.recipients() == ["ada@example.com"]

    heartbeat = tmp_path / "worker-heartbeat"
    assert heartbeat.exists(), "the worker must touch its heartbeat file"
    assert time.time() - heartbeat.stat().st_mtime < app_contract.HEARTBEAT_MAX_AGE_SECONDS

    task_lines = [line for line in json_lines(worker.output()) if line.get("task_id")]
    assert any(
        line.get("task_name") == "signups.tasks.send_welcome_email" and signup_id in line["message"]
        for line in task_lines
    ), f"worker logs must be JSON lines with the task id and name; {worker.describe()}"



def worker_connections(started_after: float) -> set[int]:
    """Backend PIDs of other processes connected to the test database since `started_after`."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_start > to_timestamp(%s)",
            [started_after],
        )
        return {pid for (pid,) in cursor.fetchall()}


def test_a_worker_keeps_its_database_connection_from_task_to_task(worker_factory) -> None:
    """Celery closes Django's connection around every task unless told otherwise; the worker must
    reuse it (CONN_MAX_AGE), or every task pays a new connection (and TLS handshake on RDS)."""
    started = time.time()
    worker = worker_factory()
    first = create_signup("first@example.com")
    wait_for(lambda: status_of(first)["status"] == "sent", timeout=20, message=worker.describe())
    wait_for(
        lambda: worker_connections(started),
        timeout=10,
        message="the worker closed its database connection after the task",
    )
    [connection_after_first] = worker_connections(started)

    later = [create_signup(f"user{index}@example.com") for index in range(5)]
    wait_for(
        lambda: all(status_of(signup)["status"] == "sent" for signup in later),
        timeout=30,
        message=worker.describe(),
    )
    assert worker_connections(started) == {connection_after_first}, (
        "five more tasks opened new database connections instead of reusing the first one"
    )

def test_sigterm_lets_a_short_task_finish_then_exits(worker_factory, smtp_server: SMTPServer) -> None:
    worker = worker_factory()
    smtp_server.release.clear()
    signup_id = create_signup("ada@example.com")
    wait_for(smtp_server.data_received.is_set, timeout=20, message=f"no delivery; {worker.describe()}")

    worker.send_signal(signal.SIGTERM)
    smtp_server.release.set()

    assert worker.wait_exit(timeout=10) == 0, worker.describe()
    assert status_of(signup_id)["status"] == "sent"
    assert smtp_server.recipients() == ["ada@example.com"]


def test_sigterm_requeues_a_task_still_running_before_the_stop_timeout(
    worker_factory, smtp_server: SMTPServer, broker
) -> None:
    worker = worker_factory()
    smtp_server.release.clear()  # the delivery hangs until the end of the test
    signup_id = create_signup("ada@example.com")
    wait_for(smtp_server.data_received.is_set, timeout=20, message=f"no delivery; {worker.describe()}")

    stopped_at = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    worker.wait_exit(timeout=STOP_TIMEOUT)
    exit_after = time.monotonic() - stopped_at

    # Cold shutdown 15 s before the stop timeout, so the worker is gone before ECS's SIGKILL.
    escalation = STOP_TIMEOUT - 15
    assert escalation <= exit_after < escalation + EMAIL_TIMEOUT + 5, (
        f"exited {exit_after:.1f} s after SIGTERM; {worker.describe()}"
    )
    assert broker.llen("email") == 1, f"the running task must be back on its queue; {worker.describe()}"
    assert broker.hlen("unacked") == 0
    assert Signup.objects.get(pk=signup_id).status == "queued"
