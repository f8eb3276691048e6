"""The release providers: the migrate task when the image or its task definition changes, and the
check that a service really rolled out its new task definition.

Pulumi pickles an instance of each provider into the stack state (dill) and rebuilds it from
there in the provider process it starts for every preview, up, destroy and refresh. The class and
everything it holds are importable from the installed project, so the state stores references to
them, never bytecode: a state written under one Python version can be read by another.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

from infra.release.compatibility import Problem, ReleaseState, release_problems
from infra.release.rollout import RolloutTarget, check_rollout
from infra.release.runner import (
    DEFAULT_POLL_INTERVAL_SECONDS,
    NOTHING_UPDATED,
    Clock,
    MigrationResult,
    MigrationTask,
    ReleaseCheckError,
    Sleep,
    run_migration,
    run_release_check,
)

# A new image or a new migrate task definition is a new release; nothing else re-runs migrations.
RELEASE_TRIGGERS = ("image", "task_definition_arn")


@dataclass(frozen=True)
class AwsClients:
    ecs: Any
    logs: Any


ClientFactory = Callable[[str], AwsClients]


def aws_clients(region: str) -> AwsClients:
    """Clients from the standard AWS credential chain (environment, profile, SSO, role)."""
    session = boto3.session.Session(region_name=region)
    config = Config(retries={"mode": "standard", "max_attempts": 10})
    return AwsClients(ecs=session.client("ecs", config=config), logs=session.client("logs", config=config))


class RunOnChangeProvider(ResourceProvider):
    """A provider that runs something on create, and on update when one of `TRIGGERS` changed.

    Deleting the resource undoes nothing (a migration or a finished rollout cannot be unapplied),
    so destroy never fails on it. The defaults are module-level functions, pickled by reference;
    tests pass doubles.
    """

    TRIGGERS: tuple[str, ...] = ()

    def __init__(
        self,
        clients: ClientFactory = aws_clients,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        poll_interval_seconds: float = DEFAULT_POLL_INTERVAL_SECONDS,
    ) -> None:
        super().__init__()
        self._clients = clients
        self._sleep = sleep
        self._clock = clock
        self._poll_interval_seconds = poll_interval_seconds

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # `olds` are the outputs of the last successful run, so they name what already ran.
        return DiffResult(changes=any(olds.get(key) != news.get(key) for key in self.TRIGGERS))

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=uuid.uuid4().hex, outs=self._run(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._run(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        pass

    def _run(self, props: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError


class ReleaseRefusedError(Exception):
    """The new image is not compatible with what runs and waits; nothing was migrated."""

    def __init__(self, problems: list[Problem]) -> None:
        lines = "".join(f"\n  - {problem}" for problem in problems)
        super().__init__(
            f"Release refused ({len(problems)} problem(s)):{lines}\n{NOTHING_UPDATED} "
            "To release anyway, knowing what it breaks: pulumi up --config releaseForce=true "
            "(docs/release.md)."
        )


class MigrationProvider(RunOnChangeProvider):
    """Checks the new image against the live broker and database, then runs its migrate task."""

    TRIGGERS = RELEASE_TRIGGERS

    def _run(self, props: dict[str, Any]) -> dict[str, Any]:
        clients = self._clients(props["region"])
        task = migration_task(props)
        state, overridden = self._check(clients, task, props)
        result = run_migration(
            clients.ecs,
            clients.logs,
            task,
            poll_interval_seconds=self._poll_interval_seconds,
            sleep=self._sleep,
            clock=self._clock,
        )
        return release_outputs(props, result, state, overridden)

    def _check(
        self, clients: AwsClients, task: MigrationTask, props: dict[str, Any]
    ) -> tuple[ReleaseState | None, list[str]]:
        """The release gate: the state the new image reports, and the problems `force` let through."""
        force = bool(props.get("force"))
        try:
            state = run_release_check(
                clients.ecs,
                clients.logs,
                task,
                poll_interval_seconds=self._poll_interval_seconds,
                sleep=self._sleep,
                clock=self._clock,
            )
        except ReleaseCheckError as error:
            if not force:
                raise
            return None, [str(error)]
        problems = release_problems(state, props.get("consumed_queues") or [])
        if problems and not force:
            raise ReleaseRefusedError(problems)
        return state, [str(problem) for problem in problems]


class RolloutCheckProvider(RunOnChangeProvider):
    """Fails the update unless the service's new task definition is what ECS runs (rollout.py)."""

    TRIGGERS = ("service", "task_definition_arn")

    def _run(self, props: dict[str, Any]) -> dict[str, Any]:
        target = RolloutTarget(
            cluster=props["cluster"],
            service=props["service"],
            task_definition_arn=props["task_definition_arn"],
            timeout_seconds=float(props["timeout_seconds"]),
        )
        deployment = check_rollout(
            self._clients(props["region"]).ecs,
            target,
            poll_interval_seconds=self._poll_interval_seconds,
            sleep=self._sleep,
            clock=self._clock,
        )
        return {**props, "deployment_id": deployment}


def migration_task(props: dict[str, Any]) -> MigrationTask:
    return MigrationTask(
        cluster=props["cluster"],
        task_definition_arn=props["task_definition_arn"],
        container_name=props["container_name"],
        subnet_ids=list(props["subnet_ids"]),
        security_group_ids=list(props["security_group_ids"]),
        assign_public_ip=bool(props["assign_public_ip"]),
        log_group_name=props["log_group_name"],
        timeout_seconds=float(props["timeout_seconds"]),
    )


def release_outputs(
    props: dict[str, Any], result: MigrationResult, state: ReleaseState | None, overridden: list[str]
) -> dict[str, Any]:
    """The resource state: the inputs of this release (what `diff` compares), how it ran, and what
    the released image holds (its tasks, routes, Beat schedule and migrations: the release record)."""
    applied = set(state.applied or ()) if state else set()
    return {
        **props,
        "task_arn": result.task_arn,
        "exit_code": result.exit_code,
        "duration_seconds": result.duration_seconds,
        "tasks": list(state.tasks) if state else None,
        "routes": dict(state.routes) if state else None,
        "beat_schedule": {name: dict(entry) for name, entry in state.beat.items()} if state else None,
        "migrations": list(state.migrations) if state else None,
        "migrations_run": [name for name in state.migrations if name not in applied] if state else None,
        "overridden": overridden,
    }
