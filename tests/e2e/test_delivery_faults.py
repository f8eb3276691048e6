"""Welcome emails under worker faults: each accepted signup gets its email exactly once.

Each scenario signs people up over HTTP (gunicorn), lets real workers send the emails to the SMTP
server, injects a fault, and ends with the data check of tests/e2e/ledger.py.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from infra import app_contract
from testkit.processes import wait_for
from tests.e2e.ledger import Scenario
from tests.e2e.services import wait_until
from tests.e2e.stack import SHORT_TIMINGS, UNACKED_RESTORE_INTERVAL_SECONDS, AppStack, Container

VISIBILITY_TIMEOUT = int(SHORT_TIMINGS[app_contract.CELERY_VISIBILITY_TIMEOUT])
SOFT_TIME_LIMIT = int(SHORT_TIMINGS[app_contract.CELERY_TASK_SOFT_TIME_LIMIT])
HARD_TIME_LIMIT = int(SHORT_TIMINGS[app_contract.CELERY_TASK_TIME_LIMIT])
STOP_TIMEOUT = int(SHORT_TIMINGS[app_contract.CELERY_WORKER_STOP_TIMEOUT])
# How long a scenario may take to settle once its fault is over: redelivery after the visibility
# timeout happens at the next restore sweep, plus time to work through the backlog.
SETTLE_SECONDS = VISIBILITY_TIMEOUT + UNACKED_RESTORE_INTERVAL_SECONDS + 30
SMTP_OUTAGE_SECONDS = 12
RETRY_WINDOW_SECONDS = 8


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
    """ECS stops a busy worker anyway (Spot reclaim, a failed health check, StopTask: scale-in and
    deployments wait for it, see test_scaling_faults): SIGTERM, SIGKILL after the stop timeout. A
    task that finishes in time completes on the stopping worker; one that cannot is put back and
    completes on another."""
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
    scenario.start_beat()  # its sweep publishes the cancelled attempt again once its lease ends

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
        "the task the stopping worker gave up came back only after the visibility timeout, not after "
        "its attempt's lease (the hard time limit)"
    )
    stack.smtp.unhold(stuck)
    scenario.settle_emails(timeout=SETTLE_SECONDS)
    assert len(stack.smtp.attempts_for(quick)) == 1, "the task that finished in time ran again"


def test_runaway_task(scenario: Scenario) -> None:
    """A task stuck past both time limits: a tarpitting mail server answers its recipient with
    continuation lines on and on, so no SMTP timeout fires, not even for the QUIT of the cleanup. The
    soft limit stops the delivery and records the failed attempt; the cleanup hangs on, and the hard
    limit replaces the pool process. The worker and its other tasks carry on, and the signup is
    emailed once, by the retry the sweep publishes."""
    stack = scenario.stack
    runaway = "runaway@example.com"
    # Only the first session is held: the retry gets through.
    stack.smtp.hold(runaway, first_session_only=True)
    worker = scenario.start_worker()
    scenario.start_beat()
    stack.sign_up([runaway])
    scenario.emails.append(runaway)
    worker.wait_for_log(f"Soft time limit ({SOFT_TIME_LIMIT}s) exceeded", timeout=SOFT_TIME_LIMIT + 20)
    scenario.sign_up(10)  # served by the worker's other pool process meanwhile
    worker.wait_for_log(f"Hard time limit ({HARD_TIME_LIMIT}s) exceeded", timeout=HARD_TIME_LIMIT + 20)
    scenario.sign_up(10)  # served after the replacement of the pool process
    scenario.settle_emails(timeout=SETTLE_SECONDS)
    assert worker.is_running(), f"the worker itself died with its runaway task; {worker.describe()}"
    assert stack.signup_attempts()[runaway] == 2, f"attempts: {stack.signup_attempts()[runaway]}"


def test_smtp_down_for_minutes(scenario: Scenario) -> None:
    """The mail server is down for several times the longest retry delay (2 minutes against 30 s
    to 30 min in production; 12 s against 1-4 s here). Each email is retried with growing delays
    from the database, not from broker countdowns, and sent once when the server is back."""
    stack = scenario.stack
    scenario.start_worker()
    scenario.start_beat()
    stack.smtp.go_down()
    outage_started = time.monotonic()
    scenario.sign_up(10)
    wait_until(lambda: stack.smtp.refused_connections >= 30, 30,
               "the emails were not retried during the outage", scenario.processes)
    time.sleep(max(0.0, outage_started + SMTP_OUTAGE_SECONDS - time.monotonic()))  # the outage itself
    stack.smtp.come_back()
    scenario.settle_emails(timeout=SETTLE_SECONDS)
    assert set(stack.signup_statuses().values()) == {"sent"}
    assert min(stack.signup_attempts().values()) >= 3, stack.signup_attempts()


def test_smtp_down_longer_than_the_retry_window(scenario: Scenario) -> None:
    """The retry window (8 s here, a day in production) ends before the mail server comes back:
    the emails fail for good, the WelcomeEmailsFailed metric says so, and an operator re-sends them
    with `manage.py failed_welcome_emails --resend` once the server is back. Each arrives once."""
    stack = scenario.stack
    scenario.start_worker(**{app_contract.WELCOME_EMAIL_RETRY_WINDOW_SECONDS: str(RETRY_WINDOW_SECONDS)})
    scenario.start_beat()
    stack.smtp.go_down()
    window_started = datetime.now(UTC)
    scenario.sign_up(5)
    wait_until(lambda: set(stack.signup_statuses().values()) == {"failed"}, RETRY_WINDOW_SECONDS + 30,
               "the emails did not fail at the end of their retry window", scenario.processes)
    wait_for(lambda: latest_published(stack, "WelcomeEmailsFailed", window_started) == 5, 30,
             "the publisher did not report the 5 failed welcome emails")
    stack.smtp.come_back()

    listing = stack.run_command("failed_welcome_emails")
    assert "5 failed welcome email(s)" in listing.output(), listing.describe()
    assert "@example.com" not in listing.output(), "the listing goes to the task's log: no addresses"
    stack.run_command("failed_welcome_emails", "--resend")
    scenario.settle_emails(timeout=SETTLE_SECONDS)
    wait_for(lambda: latest_published(stack, "WelcomeEmailsFailed", window_started) == 0, 30,
             "the failed-email metric did not return to 0 after the resend")


@pytest.mark.slow
def test_burst_with_a_worker_killed_and_restarted(scenario: Scenario) -> None:
    """1,000 signups across two workers while one is SIGKILLed and started again.

    A worker killed between popping a message and recording it in `unacked` loses that message:
    no visibility timeout brings it back. Beat runs, as on every stack, and its sweep publishes
    such a signup again after a hard time limit plus the requeue delay (17 s here)."""
    stack = scenario.stack
    scenario.start_worker()
    doomed = scenario.start_worker()
    scenario.start_beat()
    started = datetime.now(UTC)
    # A future, so a refused signup fails the test with its reason rather than dying in a thread.
    with ThreadPoolExecutor(1) as poster:
        posting = poster.submit(scenario.sign_up, 1000)
        wait_for(lambda: len(stack.smtp.messages) >= 200, 60, "the burst did not get going")
        doomed.kill()
        scenario.start_worker()
        posting.result()
    scenario.settle_emails(timeout=120)
    assert max_published_waiting(stack, started) > 0, (
        "the queue-metrics publisher never reported the burst's waiting messages to CloudWatch"
    )


def cloudwatch_client(stack: AppStack):
    publisher = stack.containers.one("queue-metrics")
    return boto3.client(
        "cloudwatch", region_name=publisher.environment[app_contract.AWS_REGION],
        endpoint_url=stack.aws_endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
    )


def latest_published(stack: AppStack, metric_name: str, since: datetime) -> float | None:
    """The newest value of a stack-wide metric (no dimension) the publisher sent since `since`."""
    namespace = stack.containers.one("queue-metrics").environment[app_contract.QUEUE_METRICS_NAMESPACE]
    metric = {"Namespace": namespace, "MetricName": metric_name}
    results = cloudwatch_client(stack).get_metric_data(
        MetricDataQueries=[{"Id": "m", "MetricStat": {"Metric": metric, "Period": 1, "Stat": "Maximum"}}],
        StartTime=since - timedelta(seconds=5), EndTime=datetime.now(UTC) + timedelta(seconds=5),
        ScanBy="TimestampDescending",
    )["MetricDataResults"][0]
    return results["Values"][0] if results["Values"] else None


def max_published_waiting(stack: AppStack, since: datetime) -> float:
    """The largest QueueWaiting the publisher sent to (moto's) CloudWatch for the email queue."""
    publisher = stack.containers.one("queue-metrics")
    cloudwatch = cloudwatch_client(stack)
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
