"""`docker stop` of a worker container in the middle of a long task, as ECS stops a task."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from infra import app_contract
from testkit.processes import wait_for
from testkit.smtp import SMTPServer
from tests.image.deployment import Deployment, Web, email_worker, post_signup

pytestmark = pytest.mark.image

# The worker turns its warm shutdown into a cold one this long before the stop timeout.
COLD_SHUTDOWN_MARGIN_SECONDS = 15


@pytest.fixture
def holding_smtp() -> Iterator[SMTPServer]:
    """A mail server that keeps every delivery waiting: the welcome email becomes a long task."""
    with SMTPServer() as server:
        server.release.clear()
        yield server


def test_stopping_a_worker_requeues_its_long_task_and_exits_0_within_the_stop_timeout(
    deployment: Deployment, web: Web, broker: redis.Redis, holding_smtp: SMTPServer
) -> None:
    worker = deployment.start(
        email_worker(deployment.containers), email_url=f"smtp://127.0.0.1:{holding_smtp.port}"
    )
    try:
        worker.wait_for_log("ready.")
        post_signup(web, "grace@example.com")
        wait_for(holding_smtp.data_received.is_set, 30, f"no delivery started; {worker.describe()}")

        seconds = worker.stop()

        stop_timeout = worker.spec.stop_timeout
        assert worker.state()["ExitCode"] == 0, worker.describe()
        assert stop_timeout - COLD_SHUTDOWN_MARGIN_SECONDS <= seconds < stop_timeout, (
            f"stopped {seconds:.1f} s after SIGTERM (stop timeout {stop_timeout} s); {worker.describe()}"
        )
        assert broker.llen(app_contract.EMAIL_QUEUE) == 1, (
            f"the running task is not back on its queue; {worker.describe()}"
        )
        assert broker.hlen("unacked") == 0
    finally:
        worker.remove()
