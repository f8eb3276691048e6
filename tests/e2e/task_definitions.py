"""The containers a stack's ECS task definitions declare, read from the Pulumi program under mocks.

The end-to-end processes start from these (command, working directory, variable names) rather
than from the app's own idea of them, so any drift between `infra/` and `app/` fails a test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

from infra import app_contract
from tests.infra.harness import run_program

TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"


@dataclass(frozen=True)
class ContainerSpec:
    """One container of one task definition."""

    family: str
    name: str
    command: tuple[str, ...]
    working_directory: str
    environment: dict[str, str]  # plain `environment` values
    secret_names: tuple[str, ...]  # names delivered through `secrets` (values live in Secrets Manager)
    stop_timeout: int

    @property
    def variable_names(self) -> set[str]:
        return set(self.environment) | set(self.secret_names)

    @property
    def role(self) -> str:
        """web, worker, beat, migrate, queue-metrics or one-off: what the command runs."""
        command = list(self.command)
        if command == app_contract.web_command():
            return "web"
        if command == app_contract.beat_command():
            return "beat"
        if command == app_contract.migrate_command():
            return "migrate"
        if command == app_contract.queue_metrics_command():
            return "queue-metrics"
        if command[:4] == ["celery", "--app", "config", "worker"]:
            return "worker"
        if command[:2] == ["python", "manage.py"]:
            return "one-off"  # another manage.py command on a task definition (infra.ops)
        raise AssertionError(f"container {self.name} of {self.family} runs an unknown command: {command}")

    def option(self, flag: str) -> str:
        """The value following `flag` in the command, e.g. --queues."""
        command = list(self.command)
        assert flag in command, f"{self.family}/{self.name} command has no {flag}: {command}"
        return command[command.index(flag) + 1]


@dataclass(frozen=True)
class StackContainers:
    stack: str
    containers: tuple[ContainerSpec, ...]

    def by_role(self, role: str) -> list[ContainerSpec]:
        return [container for container in self.containers if container.role == role]

    def one(self, role: str) -> ContainerSpec:
        found = self.by_role(role)
        assert len(found) == 1, (
            f"stack {self.stack} should declare exactly one {role} container, found "
            f"{[f'{spec.family}/{spec.name}' for spec in found]}"
        )
        return found[0]


def parse_container(family: str, definition: dict) -> ContainerSpec:
    return ContainerSpec(
        family=family,
        name=definition["name"],
        command=tuple(definition.get("command") or ()),
        working_directory=definition.get("workingDirectory", ""),
        environment={item["name"]: item["value"] for item in definition.get("environment") or ()},
        secret_names=tuple(item["name"] for item in definition.get("secrets") or ()),
        stop_timeout=int(definition.get("stopTimeout") or 30),
    )


@cache
def stack_containers(stack: str, config: tuple[tuple[str, str], ...] = ()) -> StackContainers:
    """Every container of every task definition that `stack` declares, with extra `config` set.

    One program run per stack and config.
    """
    run = run_program(stack, dict(config))
    containers = []
    for task_definition in run.of_type(TASK_DEFINITION):
        definitions = task_definition.inputs["containerDefinitions"]
        if isinstance(definitions, str):
            definitions = json.loads(definitions)
        family = task_definition.inputs.get("family", task_definition.name)
        containers.extend(parse_container(family, definition) for definition in definitions)
    assert containers, f"stack {stack} declares no ECS task definition"
    return StackContainers(stack=stack, containers=tuple(containers))
