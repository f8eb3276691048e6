"""Fixtures of the fault-injection suite, and the summary table printed at the end of the run.

Everything runs against throwaway servers started here (redis-server, a PostgreSQL cluster from
initdb, an SMTP server and a moto server for AWS), never against the machine's shared services:
the scenarios stop, restart and kill them. Web and the queue-metrics publisher run for the whole
session; each scenario starts (and kills) its own workers and Beats.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

from testkit.ecs_agent import FakeEcsAgent
from tests.e2e.ledger import Scenario, ScenarioResult
from tests.e2e.mail import HoldingSMTPServer
from tests.e2e.schedule_ledger import ScheduleResult
from tests.e2e.services import ThrowawayPostgres, ThrowawayRedis, make_work_dir
from tests.e2e.stack import AppStack, Container
from tests.e2e.task_definitions import StackContainers, stack_containers

RESULTS = pytest.StashKey[list[ScenarioResult]]()
SCHEDULE_RESULTS = pytest.StashKey[list[ScheduleResult]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[RESULTS] = []
    config.stash[SCHEDULE_RESULTS] = []


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    scenario_summary(terminalreporter, config.stash.get(RESULTS, []))
    schedule_summary(terminalreporter, config.stash.get(SCHEDULE_RESULTS, []))


def scenario_summary(terminalreporter, results: list[ScenarioResult]) -> None:
    if not results:
        return
    terminalreporter.section("fault-injection scenarios")
    header = (
        f"{'scenario':<44} {'sent':>6} {'completed':>10} {'lost':>6} {'duplicated':>11} "
        f"{'resent same Message-ID':>23} {'restarted':>10} {'seconds':>8}"
    )
    terminalreporter.write_line(header)
    terminalreporter.write_line("-" * len(header))
    for result in results:
        restarted = "-" if result.restarted is None else str(result.restarted)
        terminalreporter.write_line(
            f"{result.scenario:<44} {result.sent:>6} {result.completed:>10} {result.lost:>6} "
            f"{result.duplicated:>11} {result.resent:>23} {restarted:>10} {result.seconds:>8.1f}"
        )


def schedule_summary(terminalreporter, results: list[ScheduleResult]) -> None:
    """Per scenario and Beat entry: runs due, and what became of each (schedule_ledger.py)."""
    if not results:
        return
    terminalreporter.section("Beat schedule entries")
    header = (
        f"{'scenario':<48} {'entry':<22} {'policy':<10} {'due':>4} {'ran':>4} {'skipped':>8} "
        f"{'overlapped':>11} {'missed':>7} {'late':>5} {'duplicated':>11} {'overlapping':>12}"
    )
    terminalreporter.write_line(header)
    terminalreporter.write_line("-" * len(header))
    for result in results:
        terminalreporter.write_line(
            f"{result.scenario:<48} {result.entry:<22} {result.policy:<10} {result.slots:>4} {result.ran:>4} "
            f"{result.skipped:>8} {result.overlapped:>11} {result.missed:>7} {result.late:>5} "
            f"{result.duplicated:>11} {result.overlapping:>12}"
        )


# The dev stack with SMTP configured, so that its workers get EMAIL_URL (a secret) like a real stack.
DEV_WITH_EMAIL = ("dev", (("emailUrl", "smtp+tls://user:password@smtp.example.com:587"),))


@pytest.fixture(scope="session")
def dev_containers() -> StackContainers:
    return stack_containers(*DEV_WITH_EMAIL)


@pytest.fixture(scope="session")
def app_stack(dev_containers: StackContainers) -> Iterator[AppStack]:
    work_dir = make_work_dir()
    redis_server = ThrowawayRedis(work_dir)
    postgres = ThrowawayPostgres(work_dir)
    aws = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per AWS call otherwise
    with HoldingSMTPServer() as smtp, FakeEcsAgent() as ecs_agent:
        redis_server.start()
        postgres.create()
        aws.start()
        host, port = aws.get_host_and_port()
        stack = AppStack(
            dev_containers, redis_server, postgres, smtp, work_dir, f"http://{host}:{port}", ecs_agent
        )
        try:
            stack.run_command("collectstatic", "--noinput")  # what the image build does
            stack.migrate()
            stack.start_web()
            stack.start_queue_metrics()
            yield stack
        finally:
            stack.stop_all()
            aws.stop()
            postgres.stop()
            redis_server.stop()
            # Failures already quote the log tails they need.
            shutil.rmtree(work_dir, ignore_errors=True)


@pytest.fixture
def scenario(app_stack: AppStack, request: pytest.FixtureRequest) -> Iterator[Scenario]:
    app_stack.reset()
    name = request.node.name.removeprefix("test_").replace("_", "-")
    current = Scenario(
        name=name,
        stack=app_stack,
        results=request.config.stash[RESULTS],
        schedule_results=request.config.stash[SCHEDULE_RESULTS],
    )
    try:
        yield current
    finally:
        app_stack.smtp.unhold_all()
        app_stack.smtp.come_back()
        current.close()


@pytest.fixture
def worker_pair(scenario: Scenario) -> tuple[Container, Container]:
    return scenario.start_worker(), scenario.start_worker()
