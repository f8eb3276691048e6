"""Welcome emails while the broker or the database restarts under running processes.

Nobody restarts web or the workers: they must reconnect by themselves, as on AWS after an
ElastiCache failover or an RDS restart.
"""

from __future__ import annotations

import time

from infra import app_contract
from tests.app.app_processes import wait_for
from tests.e2e.ledger import Scenario
from tests.e2e.services import wait_until
from tests.e2e.stack import SHORT_TIMINGS, UNACKED_RESTORE_INTERVAL_SECONDS

VISIBILITY_TIMEOUT = int(SHORT_TIMINGS[app_contract.CELERY_VISIBILITY_TIMEOUT])
SETTLE_SECONDS = VISIBILITY_TIMEOUT + UNACKED_RESTORE_INTERVAL_SECONDS + 45
OUTAGE_SECONDS = 3
READINESS_CHANGE_SECONDS = 20


def test_redis_restarted_with_its_data(scenario: Scenario) -> None:
    """Queued and running tasks all complete after the broker comes back with its data."""
    stack = scenario.stack
    worker = scenario.start_worker()
    running = ["running-1@example.com", "running-2@example.com"]
    for email in running:
        stack.smtp.hold(email)
    stack.sign_up(running)
    scenario.emails += running
    for email in running:
        wait_until(lambda email=email: stack.smtp.attempts_for(email), 30,
                   f"{email} never reached the SMTP server", [worker])
    scenario.sign_up(10, prefix="queued")  # both pool processes are busy: these wait in Redis
    assert stack.broker_backlog()[app_contract.EMAIL_QUEUE] == 10, stack.broker_backlog()

    stack.redis.restart_keeping_data(down_seconds=OUTAGE_SECONDS)
    stack.smtp.unhold_all()
    wait_for(lambda: stack.get(app_contract.READINESS_PATH) == 200, READINESS_CHANGE_SECONDS,
             "web did not report Redis as reachable again")
    scenario.sign_up(10, prefix="after-restart")  # web publishes again without a restart
    # Either the worker drains the queue, or it is on its way out and ECS would replace it.
    wait_until(
        lambda: not worker.is_running() or stack.broker_backlog()[app_contract.EMAIL_QUEUE] == 0,
        SETTLE_SECONDS, "the worker neither consumed nor exited after the restart", [worker],
    )
    worker_exited = not worker.is_running()
    if worker_exited:
        scenario.start_worker()  # as ECS replaces a task whose essential container exited
    scenario.settle_emails(timeout=SETTLE_SECONDS)
    assert not worker_exited, f"the worker exited instead of reconnecting to Redis; {worker.describe()}"


def test_postgres_restarted_while_tasks_run(scenario: Scenario) -> None:
    """Tasks that meet a database outage retry and complete; /readyz says 503, then 200."""
    stack = scenario.stack
    scenario.sign_up(20)  # queued while no worker runs, e.g. scaled to zero
    assert stack.get(app_contract.READINESS_PATH) == 200

    stack.postgres.stop()
    outage_started = time.monotonic()
    wait_for(lambda: stack.get(app_contract.READINESS_PATH) == 503, READINESS_CHANGE_SECONDS,
             "/readyz did not turn 503 while PostgreSQL was down")
    worker = scenario.start_worker()  # the tasks run into the outage
    wait_until(lambda: "OperationalError" in worker.output(), 30, "no task met the database outage", [worker])
    time.sleep(max(0.0, outage_started + OUTAGE_SECONDS - time.monotonic()))  # the outage itself
    stack.postgres.start()

    wait_for(lambda: stack.get(app_contract.READINESS_PATH) == 200, READINESS_CHANGE_SECONDS,
             "/readyz did not turn 200 again after PostgreSQL came back")
    scenario.settle_emails(timeout=SETTLE_SECONDS)
    assert set(stack.signup_attempts().values()) == {1}, (
        f"waiting for the database must not use up delivery attempts: {stack.signup_attempts()}"
    )
