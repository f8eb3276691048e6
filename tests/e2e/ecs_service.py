"""How ECS chooses which tasks of a service to stop, modelled on the fake agent's protection state.

When a service's desired count drops (Application Auto Scaling scales in) or a deployment retires
the tasks of the old version, ECS stops tasks that do not have scale-in protection, and leaves the
protected ones running until their protection is turned off or expires; it checks again later
(here: every `poll` seconds). Among the unprotected tasks this model stops the oldest first, which
in the scenarios is the busy one: a model that ignored protection would stop exactly the task the
test cares about. Stopping is what ECS does: SIGTERM, then SIGKILL at the stop timeout.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from testkit.ecs_agent import FakeEcsAgent
from tests.e2e.stack import Container, StopResult


@dataclass(frozen=True)
class Stopped:
    task: Container
    result: StopResult
    at: float  # time.monotonic() when ECS sent SIGTERM


class EcsServiceModel:
    def __init__(self, agent: FakeEcsAgent, stop_timeout: float, poll: float = 0.5) -> None:
        self.agent = agent
        self.stop_timeout = stop_timeout
        self.poll = poll

    def protected(self, task: Container) -> bool:
        return self.agent.protected(task.label)

    def choose(
        self, tasks: Sequence[Container], keep: int, honour_protection: bool = True
    ) -> list[Container]:
        """The tasks ECS stops now so that at most `keep` of `tasks` run: unprotected, oldest first
        (`honour_protection=False`: what it would stop if nothing were protected)."""
        running = [task for task in tasks if task.is_running()]
        surplus = max(len(running) - keep, 0)
        return [task for task in running if not (honour_protection and self.protected(task))][:surplus]

    def scale_in(self, tasks: Sequence[Container], keep: int) -> list[Stopped]:
        """One scale-in decision: stops what may be stopped now; protected tasks stay."""
        stopped = []
        for task in self.choose(tasks, keep):
            at = time.monotonic()
            stopped.append(Stopped(task, task.stop_like_ecs(self.stop_timeout), at))
        return stopped

    def converge(self, tasks: Sequence[Container], keep: int, timeout: float) -> list[Stopped]:
        """Decide again and again until only `keep` of `tasks` run, as ECS does after a scale-in or
        during a deployment while protected tasks hold it up."""
        deadline = time.monotonic() + timeout
        stopped: list[Stopped] = []
        while sum(task.is_running() for task in tasks) > keep:
            stopped += self.scale_in(tasks, keep)
            if time.monotonic() > deadline:
                running = [f"{task.label} (protected: {self.protected(task)})" for task in tasks]
                raise AssertionError(f"ECS could not stop down to {keep} task(s) in {timeout} s: {running}")
            time.sleep(self.poll)
        return stopped
