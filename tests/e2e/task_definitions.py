"""The containers a stack's ECS task definitions declare, read from the Pulumi program under mocks.

The end-to-end processes start from these (command, working directory, variable names) rather
than from the app's own idea of them, so any drift between `infra/` and `app/` fails a test.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from dockerkit.ecs_run import MountPoint, Tmpfs, parse_mount_points, parse_task_volumes, parse_tmpfs
from infra import app_contract
from testkit.program import run_program

TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
ONE_OFF = "one-off"


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
    # How the container runs (tests/image starts the image with these: dockerkit.ecs_run).
    user: str = ""
    readonly_root_filesystem: bool = False
    init_process_enabled: bool = False
    tmpfs: tuple[Tmpfs, ...] = ()
    mount_points: tuple[MountPoint, ...] = ()
    task_volumes: tuple[str, ...] = ()  # the volumes of its task definition
    health_check: Mapping[str, Any] | None = None

    @property
    def variable_names(self) -> set[str]:
        return set(self.environment) | set(self.secret_names)

    @property
    def role(self) -> str:
        """web, worker, beat, migrate, queue-metrics, or one-off: what the command runs."""
        try:
            return app_contract.role_of(self.command)
        except ValueError:
            if list(self.command[:2]) == ["python", "manage.py"]:
                return ONE_OFF  # another manage.py command on a task definition (infra.ops)
            raise AssertionError(f"container {self.name} of {self.family} runs an unknown command") from None

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


def parse_container(
    family: str, definition: dict, volumes: Sequence[Mapping[str, Any]] = ()
) -> ContainerSpec:
    return ContainerSpec(
        family=family,
        name=definition["name"],
        command=tuple(definition.get("command") or ()),
        working_directory=definition.get("workingDirectory", ""),
        environment={item["name"]: item["value"] for item in definition.get("environment") or ()},
        secret_names=tuple(item["name"] for item in definition.get("secrets") or ()),
        stop_timeout=int(definition.get("stopTimeout") or 30),
        user=definition.get("user", ""),
        readonly_root_filesystem=bool(definition.get("readonlyRootFilesystem", False)),
        init_process_enabled=bool((definition.get("linuxParameters") or {}).get("initProcessEnabled", False)),
        tmpfs=parse_tmpfs(definition),
        mount_points=parse_mount_points(definition),
        task_volumes=parse_task_volumes(volumes),
        health_check=definition.get("healthCheck"),
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
        volumes = task_definition.inputs.get("volumes") or ()
        containers.extend(parse_container(family, definition, volumes) for definition in definitions)
    assert containers, f"stack {stack} declares no ECS task definition"
    return StackContainers(stack=stack, containers=tuple(containers))
