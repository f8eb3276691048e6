"""A worker logs one outcome line per task run, with the image digest: what a release canary reads
(app/queuemetrics/outcomes.py, infra/workers/canary.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.test import Client

from infra import app_contract
from queuemetrics import outcomes
from queuemetrics.outcomes import FAILURE, SUCCESS, TaskOutcome, parse_outcome
from signups.tasks import send_welcome_email
from testkit.processes import AppProcess, container_env, start_worker, wait_for
from testkit.smtp import SMTPServer

pytestmark = pytest.mark.django_db(transaction=True)

DIGEST = "sha256:" + "c" * 64
SEND = "signups.tasks.send_welcome_email"


@pytest.fixture
def worker(
    test_database_url: str, redis_url: str, smtp_server: SMTPServer, tmp_path: Path, broker
) -> Iterator[AppProcess]:
    env = container_env(
        test_database_url,
        redis_url,
        EMAIL_URL=f"smtp://127.0.0.1:{smtp_server.port}",
        WORKER_HEARTBEAT_FILE=str(tmp_path / "worker-heartbeat"),
        **{app_contract.IMAGE_DIGEST: DIGEST},
    )
    process = start_worker(env, queues=app_contract.QUEUES)
    yield process
    process.stop()


def outcomes_of(process: AppProcess) -> list[TaskOutcome]:
    return [outcome for line in process.output().splitlines() if (outcome := parse_outcome(line))]


def test_each_task_run_logs_its_outcome_and_the_image_that_ran_it(worker: AppProcess) -> None:
    response = Client().post("/api/signups", {"email": "ada@example.com"}, content_type="application/json")
    assert response.status_code == 202, response.content
    send_welcome_email.delay("not-a-signup-id")  # the database refuses the id: the run fails

    wait_for(lambda: len(outcomes_of(worker)) >= 2, timeout=30, message=worker.describe())
    by_outcome = {outcome.outcome: outcome for outcome in outcomes_of(worker)}
    assert set(by_outcome) == {SUCCESS, FAILURE}, outcomes_of(worker)
    assert {(outcome.task, outcome.image_digest) for outcome in by_outcome.values()} == {(SEND, DIGEST)}
    assert by_outcome[FAILURE].error.startswith("ValidationError: "), by_outcome[FAILURE]
    assert by_outcome[SUCCESS].error == "" and by_outcome[SUCCESS].task_id


def test_other_lines_are_no_outcomes_and_eager_runs_log_none(caplog: pytest.LogCaptureFixture) -> None:
    assert parse_outcome('{"event": "task_outcome", "outcome": "maybe"}') is None
    assert parse_outcome('{"message": "task success: x"}') is None
    assert parse_outcome("plain text") is None
    eager = SimpleNamespace(name=SEND, request=SimpleNamespace(is_eager=True, id="1"))
    outcomes.on_task_success(sender=eager)
    assert not [record for record in caplog.records if record.name == outcomes.logger.name]
