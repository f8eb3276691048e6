"""Scale-in and deployments while a worker runs a long task: ECS stops idle workers only.

Workers protect their task from scale-in while they run tasks (core.task_protection, through the
fake ECS agent); the harness decides like ECS which tasks to stop (tests/e2e/ecs_service.py). A
task longer than the stop timeout would otherwise be given up at SIGTERM and start over on another
worker (test_worker_stopped_by_ecs_mid_task shows that case, which protection cannot prevent when
ECS stops a task for another reason: Spot reclaim, a failed health check, StopTask).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from infra import app_contract
from tests.e2e.ecs_service import EcsServiceModel
from tests.e2e.ledger import Scenario
from tests.e2e.services import wait_until
from tests.e2e.stack import SHORT_TIMINGS

STOP_TIMEOUT = int(SHORT_TIMINGS[app_contract.CELERY_WORKER_STOP_TIMEOUT])
# The long task outlives the stop timeout (a stopping worker would give it up after 2 s and ECS
# would kill it after 17), but not its own time limits: these workers get longer ones.
LONG_TASK_SECONDS = STOP_TIMEOUT + 8
LONG_TIME_LIMITS = {
    app_contract.CELERY_TASK_SOFT_TIME_LIMIT: "40",
    app_contract.CELERY_TASK_TIME_LIMIT: "45",
    app_contract.CELERY_VISIBILITY_TIMEOUT: "60",
}
SETTLE_SECONDS = 60


def test_scale_in_and_deploy_spare_a_busy_worker(scenario: Scenario) -> None:
    """Scale-in from 2 workers to 1 stops the idle one, then a deployment waits for the busy one
    to finish its long task: the task runs once, start to end, and no worker is killed."""
    stack, agent = scenario.stack, scenario.stack.ecs_agent
    ecs = EcsServiceModel(agent, STOP_TIMEOUT)
    busy = scenario.start_worker(**LONG_TIME_LIMITS)
    long_task = "long-task@example.com"
    stack.smtp.hold(long_task)
    stack.sign_up([long_task])
    scenario.emails.append(long_task)
    [started] = wait_until(lambda: stack.smtp.attempts_for(long_task), 30, "the long task never ran", [busy])
    idle = scenario.start_worker(**LONG_TIME_LIMITS)
    wait_until(lambda: agent.protected(busy.label), 10, "the busy worker did not protect itself", [busy])
    assert not agent.protected(idle.label), "a worker that ran nothing must not hold scale-in up"

    # Application Auto Scaling lowers the desired count from 2 to 1. Without protection, ECS (oldest
    # first here) would stop the busy worker.
    assert ecs.choose([busy, idle], keep=1, honour_protection=False) == [busy]
    [stopped] = ecs.scale_in([busy, idle], keep=1)
    assert stopped.task is idle and not stopped.result.killed, stopped
    assert busy.is_running()
    scenario.sign_up(5, prefix="during-the-long-task")  # the busy worker's other process takes them

    # A deployment replaces the remaining worker: the new task starts beside the old one, which ECS
    # stops once it no longer protects itself (RELIABILITY.md rule 17: protection holds deployments).
    scenario.start_worker(**LONG_TIME_LIMITS)
    with ThreadPoolExecutor(1) as deployment:
        retiring = deployment.submit(ecs.converge, [busy], 0, LONG_TASK_SECONDS + 60)
        time.sleep(max(0.0, started + LONG_TASK_SECONDS - time.monotonic()))  # the long task itself
        assert busy.is_running(), f"the deployment stopped a worker mid-task; {busy.describe()}"
        stack.smtp.unhold(long_task)
        [retired] = retiring.result()
    assert retired.task is busy and not retired.result.killed, retired
    assert retired.at >= started + LONG_TASK_SECONDS, "stopped only after its long task ended"
    assert started + LONG_TASK_SECONDS - stopped.at > STOP_TIMEOUT, "the task outlived a stop timeout"

    result = scenario.settle_emails(timeout=SETTLE_SECONDS)
    assert len(stack.smtp.attempts_for(long_task)) == 1, "the long task ran once, from start to end"
    assert result.restarted == 0, f"{result.restarted} deliveries started over"
    assert max(stopped.result.seconds, retired.result.seconds) < STOP_TIMEOUT / 2, "idle workers stop at once"
