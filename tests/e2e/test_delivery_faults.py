"""Welcome emails under worker faults: each accepted signup gets its email exactly once.

Each scenario signs people up over HTTP (gunicorn), lets real workers send the emails to the SMTP
server, injects a fault, and ends with the data check of tests/e2e/ledger.py.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import boto3
import psycopg
import pytest

from infra import app_contract
from tests.app.app_processes import wait_for
from tests.e2e.ledger import Scenario
from tests.e2e.services import wait_until
from tests.e2e.stack import SHORT_TIMINGS, UNACKED_RESTORE_INTERVAL_SECONDS, AppStack, Container

VISIBILITY_TIMEOUT = int(SHORT_TIMINGS[app_contract.CELERY_VISIBILITY_TIMEOUT])
SOFT_TIME_LIMIT = int(SHORT_TIMINGS[app_contract.CELERY_TASK_SOFT_TIME_LIMIT])
HARD_TIME_LIMIT = int(SHORT_TIMINGS[app_contract.CELERY_TASK_TIME_LIMIT])
STOP_TIMEOUT = int(SHORT_TIMINGS[app_contract.CELERY_WORKER_STOP_TIMEOUT])
# How long a scenario may take to settle once its fault is over: redelivery after the visibility
# timeout happens at the next restore sweep, plus time to work through the backlog.
# Long enough that the task reaches its soft limit while the mail server holds it (below the SMTP
# timeout after the soft limit), short enough that it gets there (above soft limit - SMTP timeout).
SLOW_TRANSACTION_SECONDS = SOFT_TIME_LIMIT - 8
SETTLE_SECONDS = VISIBILITY_TIMEOUT + UNACKED_RESTORE_INTERVAL_SECONDS + 30


def wait_for_attempts(
    stack: AppStack, email: str, count: int, timeout: float, worker: Container
) -> list[float]:
    return wait_until(
        lambda: (attempts := stack.smtp.attempts_for(email)) and len(attempts) >= count and attempts,
        timeout, f"{email}: expected {count} delivery attempt(s) at the SMTP server", [worker],
    )


def test_happy_path(scenario: Scenario) -> None:
    scenario.start_worker()
    scenario.sign_up(30)
    scenario.settle_emails(timeout=60)


def test_worker_sigkilled_mid_task(scenario: Scenario) -> None:
    """OOM kill or Spot reclaim: the message comes back after the visibility timeout, runs once."""
    stack = scenario.stack
    doomed = scenario.start_worker()
    victim = "sigkill-victim@example.com"
    stack.smtp.hold(victim)
    stack.sign_up([victim])
    scenario.emails.append(victim)
    wait_for_attempts(stack, victim, 1, 30, doomed)  # the task holds its row lock, mid-delivery

    doomed.kill()
    stack.smtp.unhold(victim)
    scenario.start_worker()  # ECS starts a replacement task
    scenario.sign_up(5)  # new work flows while the lost message waits for its visibility timeout
    scenario.settle_emails(timeout=SETTLE_SECONDS)

    first_attempt, redelivered = stack.smtp.attempts_for(victim)[:2]
    redelivery_seconds = redelivered - first_attempt
    latest = VISIBILITY_TIMEOUT + UNACKED_RESTORE_INTERVAL_SECONDS + 3
    assert VISIBILITY_TIMEOUT - 1 <= redelivery_seconds <= latest, (
        f"the killed worker's task was delivered again after {redelivery_seconds:.1f} s; expected the "
        f"visibility timeout ({VISIBILITY_TIMEOUT} s) plus at most one restore sweep "
        f"({UNACKED_RESTORE_INTERVAL_SECONDS} s)"
    )


def test_worker_stopped_by_ecs_mid_task(scenario: Scenario) -> None:
    """Scale-in or deploy: SIGTERM, SIGKILL after the stop timeout. A task that finishes in time
    completes on the stopping worker; one that cannot is put back and completes on another."""
    stack = scenario.stack
    leaving = scenario.start_worker()
    quick, stuck = "finishes-in-time@example.com", "cannot-finish@example.com"
    stack.smtp.hold(quick)
    stack.smtp.hold(stuck)
    stack.sign_up([quick, stuck])
    scenario.emails += [quick, stuck]
    wait_for_attempts(stack, quick, 1, 30, leaving)
    wait_for_attempts(stack, stuck, 1, 30, leaving)
    staying = scenario.start_worker()  # started now, so that both tasks run on the leaving worker

    leaving.terminate()
    leaving.wait_for_log("warm shutdown", timeout=10)
    stack.smtp.unhold(quick)  # this one finishes inside the stop window
    stopped = leaving.wait_stopped(STOP_TIMEOUT)
    assert not stopped.killed, (
        f"the worker was still running at the stop timeout ({STOP_TIMEOUT} s) and had to be SIGKILLed; "
        f"{leaving.describe()}"
    )
    retried_at = wait_for_attempts(stack, stuck, 2, VISIBILITY_TIMEOUT, staying)[1]
    assert retried_at - leaving.terminated_at < VISIBILITY_TIMEOUT, (
        "the task the stopping worker gave up was not put back on the queue: it came back only after "
        "the visibility timeout"
    )
    stack.smtp.unhold(stuck)
    scenario.settle_emails(timeout=SETTLE_SECONDS)
    assert len(stack.smtp.attempts_for(quick)) == 1, "the task that finished in time ran again"


def test_runaway_task(scenario: Scenario) -> None:
    """A task stuck past its time limits: a slow transaction elsewhere holds its row, then the mail
    server stops answering. The soft limit interrupts it to clean up, the cleanup itself waits on the
    mail server, so the hard limit replaces the pool process. The worker's other tasks go on, and
    the stuck signup is still emailed once the mail server answers again."""
    stack = scenario.stack
    runaway = "runaway@example.com"
    stack.sign_up([runaway])  # queued: no worker runs yet
    scenario.emails.append(runaway)
    # Only the first delivery hangs: the run that the hard limit kills. Its redelivery may reach the
    # mail server before the test lifts the hold, and must not hang again.
    stack.smtp.hold(runaway, first_session_only=True)
    with stack.postgres.connect() as blocker:
        with blocker.transaction():
            blocker.execute("SELECT 1 FROM signups_signup WHERE email = %s FOR UPDATE", (runaway,))
            worker = scenario.start_worker()
            wait_until(lambda: waiting_for_a_lock(blocker), 30, "the task never waited for the row", [worker])
            time.sleep(SLOW_TRANSACTION_SECONDS)  # the slow transaction itself
        scenario.sign_up(10)  # served by the worker's other pool process meanwhile
        worker.wait_for_log(f"Soft time limit ({SOFT_TIME_LIMIT}s) exceeded", timeout=SOFT_TIME_LIMIT + 10)
        worker.wait_for_log(f"Hard time limit ({HARD_TIME_LIMIT}s) exceeded", timeout=HARD_TIME_LIMIT + 10)
    stack.smtp.unhold(runaway)  # the mail server recovers
    scenario.sign_up(10)  # served after the replacement of the pool process
    scenario.settle_emails(timeout=SETTLE_SECONDS)
    assert worker.is_running(), f"the worker itself died with its runaway task; {worker.describe()}"
    # The hard limit put the message back (no acknowledgement): the killed run and the one that sent.
    assert stack.signup_attempts()[runaway] == 2, f"attempts: {stack.signup_attempts()[runaway]}"


def waiting_for_a_lock(connection: psycopg.Connection) -> bool:
    query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    return connection.execute(query).fetchone()[0] > 0


@pytest.mark.slow
def test_burst_with_a_worker_killed_and_restarted(scenario: Scenario) -> None:
    """1,000 signups across two workers while one is SIGKILLed and started again."""
    stack = scenario.stack
    scenario.start_worker()
    doomed = scenario.start_worker()
    started = datetime.now(UTC)
    posting = threading.Thread(target=scenario.sign_up, args=(1000,))
    posting.start()
    wait_for(lambda: len(stack.smtp.messages) >= 200, 60, "the burst did not get going")
    doomed.kill()
    scenario.start_worker()
    posting.join()
    scenario.settle_emails(timeout=120)
    assert max_published_waiting(stack, started) > 0, (
        "the queue-metrics publisher never reported the burst's waiting messages to CloudWatch"
    )


def max_published_waiting(stack: AppStack, since: datetime) -> float:
    """The largest QueueWaiting the publisher sent to (moto's) CloudWatch for the email queue."""
    publisher = stack.containers.one("queue-metrics")
    cloudwatch = boto3.client(
        "cloudwatch", region_name=publisher.environment[app_contract.AWS_REGION],
        endpoint_url=stack.aws_endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    metrics = cloudwatch.list_metrics(
        Namespace=publisher.environment[app_contract.QUEUE_METRICS_NAMESPACE], MetricName="QueueWaiting",
        Dimensions=[{"Name": "Queue", "Value": app_contract.EMAIL_QUEUE}],
    )["Metrics"]
    assert metrics, "the publisher sent no QueueWaiting metric for the email queue"
    statistics = cloudwatch.get_metric_statistics(
        Namespace=publisher.environment[app_contract.QUEUE_METRICS_NAMESPACE], MetricName="QueueWaiting",
        Dimensions=metrics[0]["Dimensions"], StartTime=since - timedelta(minutes=1),
        EndTime=datetime.now(UTC) + timedelta(minutes=1), Period=60, Statistics=["Maximum"],
    )["Datapoints"]
    return max((point["Maximum"] for point in statistics), default=0.0)
