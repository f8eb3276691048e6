"""Welcome emails while the broker or the database restarts under running processes.

Nobody restarts web or the workers: they must reconnect by themselves, as on AWS after an
ElastiCache failover or an RDS restart.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import requests

from infra import app_contract
from testkit.processes import wait_for
from tests.e2e.ledger import Scenario
from tests.e2e.services import wait_until
from tests.e2e.stack import SHORT_TIMINGS, UNACKED_RESTORE_INTERVAL_SECONDS, AppStack

VISIBILITY_TIMEOUT = int(SHORT_TIMINGS[app_contract.CELERY_VISIBILITY_TIMEOUT])
SETTLE_SECONDS = VISIBILITY_TIMEOUT + UNACKED_RESTORE_INTERVAL_SECONDS + 45
OUTAGE_SECONDS = 3
READINESS_CHANGE_SECONDS = 20
HALF_OPEN_SECONDS = 8
# A signup is answered within this, whatever the broker does (the p99 bound).
POST_DEADLINE_SECONDS = 3


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
    assert_api_answers_503_with_retry_after(stack.base_url)
    time.sleep(max(0.0, outage_started + OUTAGE_SECONDS - time.monotonic()))  # the outage itself
    stack.postgres.start()

    wait_for(lambda: stack.get(app_contract.READINESS_PATH) == 200, READINESS_CHANGE_SECONDS,
             "/readyz did not turn 200 again after PostgreSQL came back")
    scenario.settle_emails(timeout=SETTLE_SECONDS)
    assert set(stack.signup_attempts().values()) == {1}, (
        f"waiting for the database must not use up delivery attempts: {stack.signup_attempts()}"
    )


def assert_api_answers_503_with_retry_after(base_url: str) -> None:
    """With the database down, the API says so in JSON, and when to come back; nothing is stored."""
    for method, path, body in [
        ("POST", "/api/signups", {"email": "during-the-outage@example.com"}),
        ("GET", f"/api/signups/{uuid.uuid4()}", None),
    ]:
        response = requests.request(method, base_url + path, json=body, timeout=15)
        assert response.status_code == 503, (method, response.status_code, response.text)
        assert response.headers["Content-Type"] == "application/json", response.text
        assert int(response.headers["Retry-After"]) > 0


def test_broker_half_open(scenario: Scenario) -> None:
    """A failover in progress: Redis accepts connections and answers nothing. Every signup is
    answered within 3 s (202, or 503 with the signup kept), /healthz stays fast, and once Redis
    answers again the sweep publishes what the web could not: each email arrives once."""
    stack = scenario.stack
    scenario.start_worker()
    scenario.start_beat()
    health = HealthzPoller(stack.base_url)
    stack.redis.pause()
    try:
        health.start()
        answers = scenario.sign_up(24, accepted=(202, 503))
        time.sleep(max(0.0, HALF_OPEN_SECONDS - health.seconds_running()))  # the fault itself
    finally:
        stack.redis.resume()
        health.stop()

    slowest = max(answer.seconds for answer in answers)
    assert slowest < POST_DEADLINE_SECONDS, f"a signup took {slowest:.1f} s while the broker was half-open"
    assert health.failures == [] and max(health.durations) < POST_DEADLINE_SECONDS, (
        f"/healthz failed or was slow: {health.failures[:3]}, slowest {max(health.durations):.1f} s"
    )
    assert any(answer.status == 503 for answer in answers), "the half-open broker refused nothing?"
    assert all(json.loads(answer.body)["id"] for answer in answers), "a 503 must name the kept signup"
    scenario.settle_emails(timeout=SETTLE_SECONDS)


class HealthzPoller:
    """Polls /healthz, as the ALB does (more often), recording how long each answer took."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.durations: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._started = 0.0

    def start(self) -> None:
        self._started = time.monotonic()
        self._thread.start()

    def seconds_running(self) -> float:
        return time.monotonic() - self._started

    def _poll(self) -> None:
        while not self._stop.wait(0.2):
            started = time.monotonic()
            try:
                status = requests.get(self.base_url + app_contract.LIVENESS_PATH, timeout=10).status_code
            except requests.RequestException as error:
                self.failures.append(repr(error))
                continue
            self.durations.append(time.monotonic() - started)
            if status != 200:
                self.failures.append(f"HTTP {status}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)


def test_every_line_every_role_prints_is_json(app_stack: AppStack) -> None:
    """Web, worker, Beat, the queue-metrics publisher and migrate print JSON lines only, start-up and
    shutdown included (CloudWatch Logs Insights reads fields from JSON lines), and no email address.
    Every process this session started counts, faults included; one-off commands print for the
    person who runs them."""
    worker = app_stack.start_worker()
    beat = app_stack.start(app_stack.containers.one("beat"))
    try:
        beat.wait_for_log("Acquired lock")
    finally:
        for process in (beat, worker):
            process.stop_like_ecs(stop_timeout=20)

    not_json, addresses = {}, {}
    for process in app_stack.processes:
        if process.spec.role == "one-off":
            continue
        lines = process.output().splitlines()
        if bad := [line for line in lines if not is_json_object(line)]:
            not_json[process.label] = bad[:3]
        # Every address the scenarios sign up is at one of these domains.
        if leaked := [line for line in lines if "@example.com" in line or "@xn--" in line]:
            addresses[process.label] = leaked[:3]
    assert not not_json, f"lines that are not JSON, by process: {not_json}"
    assert not addresses, f"email addresses in the logs, by process: {addresses}"


def is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
