"""ECS task scale-in protection of busy workers: the rules, and a real worker against a fake agent."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.test import Client

from core.task_protection import (
    FIRST_RETRY_SECONDS,
    MAX_EXPIRES_MINUTES,
    AgentClient,
    AgentError,
    ProtectionKeeper,
    ProtectionState,
    protection_timings,
)
from infra import app_contract
from testkit.ecs_agent import FakeEcsAgent
from testkit.processes import AppProcess, container_env, free_port, start_worker, wait_for
from testkit.smtp import SMTPServer

IDLE_SECONDS = 2
# The production default of CELERY_TASK_TIME_LIMIT, which the test workers keep.
HARD_TIME_LIMIT = 300
TIMINGS = protection_timings(HARD_TIME_LIMIT, idle_seconds=IDLE_SECONDS)


# --- The rules --------------------------------------------------------------------------------------


def test_protection_lasts_a_hard_time_limit_past_the_next_renewal():
    # 300 s hard limit + 60 s until the next renewal + 30 s margin = 6.5 min, rounded up.
    assert TIMINGS.expires_in_minutes == 7
    assert TIMINGS.renew_seconds == 60
    assert TIMINGS.max_hold_seconds == 2 * HARD_TIME_LIMIT
    assert protection_timings(1, 1).expires_in_minutes == 2
    assert protection_timings(10**6, 1).expires_in_minutes == MAX_EXPIRES_MINUTES, "the agent's maximum"


def test_protect_while_busy_renew_every_interval_and_release_after_the_idle_time():
    state = ProtectionState(TIMINGS)
    assert state.next_request(0, busy=False) is None, "an idle worker that was never protected asks nothing"
    assert state.next_request(1, busy=True) is True
    state.granted(1, True)
    assert state.next_request(2, busy=True) is None
    assert state.next_request(60, busy=True) is None
    assert state.next_request(61, busy=True) is True, "renewed after RENEW_SECONDS while busy"
    state.granted(61, True)
    assert state.next_request(62, busy=False) is None, "a short pause keeps the protection"
    assert state.next_request(63, busy=True) is None
    assert state.next_request(64, busy=False) is None
    assert state.next_request(64 + IDLE_SECONDS, busy=False) is False
    state.granted(66, False)
    assert state.next_request(100, busy=False) is None
    assert state.next_request(101, busy=True) is True


def test_a_worker_busy_without_a_break_lets_its_protection_lapse_so_a_deployment_can_go_on(caplog):
    state = ProtectionState(TIMINGS)
    assert state.next_request(0, busy=True) is True
    state.granted(0, True)
    hold = TIMINGS.max_hold_seconds
    with caplog.at_level(logging.WARNING):
        assert state.next_request(hold, busy=True) is None, "no renewal after the hold"
        assert state.next_request(hold + 120, busy=True) is None
    assert "no longer renewed" in caplog.text
    assert state.next_request(hold + 121, busy=False) is None
    assert state.next_request(hold + 122, busy=True) is True, "one idle moment starts a new hold"


def test_failed_requests_are_retried_with_a_growing_delay():
    state = ProtectionState(TIMINGS)
    assert state.next_request(0, busy=True) is True
    assert state.refused(0) == FIRST_RETRY_SECONDS
    assert state.next_request(FIRST_RETRY_SECONDS - 1, busy=True) is None
    assert state.next_request(FIRST_RETRY_SECONDS, busy=True) is True
    assert state.refused(FIRST_RETRY_SECONDS) == 2 * FIRST_RETRY_SECONDS
    state.granted(20, True)
    assert state.failures == 0


class StubAgent:
    def __init__(self) -> None:
        self.calls: list[tuple[bool, int]] = []
        self.error: AgentError | None = None

    def set_protection(self, enabled: bool, expires_in_minutes: int) -> dict:
        self.calls.append((enabled, expires_in_minutes))
        if self.error is not None:
            raise self.error
        return {"ProtectionEnabled": enabled}


def test_the_keeper_follows_the_running_tasks_and_survives_agent_errors(caplog):
    agent, clock, running = StubAgent(), [0.0], [0]
    keeper = ProtectionKeeper(agent, TIMINGS, running_tasks=lambda: running[0], clock=lambda: clock[0])
    keeper.step()
    assert agent.calls == []
    running[0] = 2
    agent.error = AgentError("ThrottlingException: Rate exceeded")
    with caplog.at_level(logging.WARNING):
        keeper.step()
    assert "Rate exceeded" in caplog.text and "carries on" in caplog.text
    clock[0] += FIRST_RETRY_SECONDS
    agent.error = None
    keeper.step()
    assert agent.calls == [(True, 7), (True, 7)]
    running[0] = 0
    clock[0] += 1
    keeper.step()
    clock[0] += IDLE_SECONDS
    keeper.step()
    assert agent.calls[-1] == (False, 7)


# --- The agent's answers ------------------------------------------------------------------------------


@pytest.fixture
def agent() -> Iterator[FakeEcsAgent]:
    with FakeEcsAgent() as fake:
        yield fake


def test_the_client_reads_protection_failures_and_errors_as_the_agent_sends_them(agent: FakeEcsAgent):
    client = AgentClient(agent.uri("task-a"))
    assert client.set_protection(True, 7)["ProtectionEnabled"] is True
    assert agent.requests_of("task-a")[-1].expires_in_minutes == 7
    assert agent.protected("task-a")

    agent.answer_with(200, {"failure": {"Arn": "arn", "Detail": None, "Reason": "DEPLOYMENT_BLOCKED"}})
    with pytest.raises(AgentError, match="DEPLOYMENT_BLOCKED"):
        client.set_protection(True, 7)
    agent.answer_with(500, {"error": {"Arn": "arn", "Code": "RequestCanceled", "Message": "Timed out"}})
    with pytest.raises(AgentError, match="HTTP 500: RequestCanceled: Timed out"):
        client.set_protection(False, 7)
    with pytest.raises(AgentError, match="agent unreachable"):
        AgentClient(f"http://127.0.0.1:{free_port()}/task-b", timeout=2).set_protection(True, 7)


# --- A real worker --------------------------------------------------------------------------------------


@pytest.fixture
def protected_worker(
    test_database_url: str, redis_url: str, smtp_server: SMTPServer, tmp_path: Path, broker, agent
) -> Iterator[Callable[..., AppProcess]]:
    workers: list[AppProcess] = []

    def start(task: str = "worker-task", agent_uri: str | None = None) -> AppProcess:
        env = container_env(
            test_database_url,
            redis_url,
            EMAIL_URL=f"smtp://127.0.0.1:{smtp_server.port}",
            WORKER_HEARTBEAT_FILE=str(tmp_path / f"{task}-heartbeat"),
            ECS_AGENT_URI=agent_uri or agent.uri(task),
            **{app_contract.WORKER_PROTECTION_IDLE_SECONDS: str(IDLE_SECONDS)},
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


def status_of(signup_id: str) -> str:
    return Client().get(f"/api/signups/{signup_id}").json()["status"]


def warnings_of(worker: AppProcess) -> list[str]:
    lines = []
    for line in worker.output().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("level") == "WARNING":
            lines.append(record.get("message", ""))
    return lines


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_is_protected_exactly_while_a_task_runs(
    protected_worker, agent: FakeEcsAgent, smtp_server: SMTPServer
):
    worker = protected_worker("busy-task")
    smtp_server.release.clear()  # the delivery runs until the test releases it
    before_the_task = time.monotonic()
    signup = create_signup("ada@example.com")
    wait_for(smtp_server.data_received.is_set, 20, f"no delivery; {worker.describe()}")
    wait_for(lambda: agent.protected("busy-task"), 10, f"not protected while busy; {worker.describe()}")
    first = agent.requests_of("busy-task")[0]
    assert first.at >= before_the_task, "an idle worker asks for nothing"
    assert (first.enabled, first.expires_in_minutes) == (True, TIMINGS.expires_in_minutes)

    smtp_server.release.set()
    wait_for(lambda: status_of(signup) == "sent", 20, worker.describe())
    finished = agent.requests_of("busy-task")[-1].at
    wait_for(lambda: not agent.protected("busy-task"), 10, f"still protected when idle; {worker.describe()}")
    released = agent.requests_of("busy-task")[-1]
    assert released.enabled is False
    assert released.at - finished >= IDLE_SECONDS - 1, "released only after the idle time"
    assert [request.enabled for request in agent.requests_of("busy-task")] == [True, False]
    assert worker.is_running()


@pytest.mark.django_db(transaction=True)
def test_a_worker_carries_on_when_the_agent_fails_and_is_protected_once_it_answers(
    protected_worker, agent: FakeEcsAgent, smtp_server: SMTPServer
):
    worker = protected_worker("unlucky-task")
    throttled = {"Arn": "arn", "Code": "ThrottlingException", "Message": "Rate exceeded"}
    agent.answer_with(500, {"error": throttled})
    smtp_server.release.clear()
    held = create_signup("held@example.com")
    wait_for(lambda: agent.requests_of("unlucky-task"), 20, f"no protection request; {worker.describe()}")
    wait_for(
        lambda: any("Rate exceeded" in line for line in warnings_of(worker)),
        10,
        f"the failure was not logged; {worker.describe()}",
    )
    agent.answer_normally()
    wait_for(
        lambda: agent.protected("unlucky-task"),
        FIRST_RETRY_SECONDS + 10,
        f"not protected after the agent recovered; {worker.describe()}",
    )
    smtp_server.release.set()
    later = create_signup("later@example.com")
    wait_for(lambda: status_of(held) == status_of(later) == "sent", 20, worker.describe())
    assert worker.is_running()


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_agent_costs_nothing_but_a_log_line(protected_worker, smtp_server: SMTPServer):
    worker = protected_worker("lonely-task", agent_uri=f"http://127.0.0.1:{free_port()}/lonely-task")
    smtp_server.release.clear()  # a task long enough to be seen running
    signups = [create_signup(f"user{index}@example.com") for index in range(3)]
    wait_for(
        lambda: any("agent unreachable" in line for line in warnings_of(worker)),
        20,
        f"the unreachable agent was not logged; {worker.describe()}",
    )
    smtp_server.release.set()
    wait_for(lambda: all(status_of(s) == "sent" for s in signups), 30, worker.describe())
    assert worker.is_running()
