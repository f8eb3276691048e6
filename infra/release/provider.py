"""The release providers: the migrate task when the image or its task definition changes, and the
check that a service really rolled out its new task definition.

Pulumi pickles an instance of each provider into the stack state (dill) and rebuilds it from
there in the provider process it starts for every preview, up, destroy and refresh. The class and
everything it holds are importable from the installed project, so the state stores references to
them, never bytecode: a state written under one Python version can be read by another.

`destroy` and `refresh` rebuild the provider from the copy in the state, not from the program
(pulumi/pulumi#6285), so that copy must follow the code: when the only difference is the provider
itself (a new release that moved or renamed something it refers to), `diff` reports a change and
`update` stores the new provider and runs nothing (provider_refreshed). The names a released state
refers to stay importable (tests/infra/engine/test_stored_providers.py loads every release's).
"""

from __future__ import annotations

import uuid
from typing import Any

from pulumi.dynamic import CreateResult

from infra.dynamic_providers import AwsClients, RunOnChangeProvider, aws_clients
from infra.release.compatibility import Problem, ReleaseState, release_problems
from infra.release.runner import (
    NOTHING_UPDATED,
    CheckedRelease,
    MigrationResult,
    MigrationTask,
    ReleaseCheckError,
    run_migration,
    run_release_check,
)
from infra.services.rollout import RolloutCheckProvider

# A new image or a new migrate task definition is a new release; nothing else re-runs migrations.
RELEASE_TRIGGERS = ("image", "task_definition_arn")


# States stored by release 0.3.0 name infra.release.provider.aws_clients and .RolloutCheckProvider
# in their pickled providers: both stay importable from here, the second only as this shim
# (tests/infra/engine/test_stored_providers.py loads them).
__all__ = ["RolloutCheckProvider", "aws_clients"]


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

    def create(self, props: dict[str, Any]) -> CreateResult:
        # A stack's first release: its database may be empty (a new stack, a new preview).
        return CreateResult(id_=uuid.uuid4().hex, outs=self._release(props, first=True))

    def _run(self, props: dict[str, Any]) -> dict[str, Any]:
        return self._release(props, first=False)

    def _release(self, props: dict[str, Any], *, first: bool) -> dict[str, Any]:
        clients = self._clients(props["region"])
        task = migration_task(props)
        checked, overridden = self._check(clients, task, props, first=first)
        migrated_by_check = checked.migrated if checked else None
        result = migrated_by_check or run_migration(
            clients.ecs,
            clients.logs,
            task,
            poll_interval_seconds=self._poll_interval_seconds,
            sleep=self._sleep,
            clock=self._clock,
        )
        return release_outputs(props, result, checked.state if checked else None, overridden)

    def _check(
        self, clients: AwsClients, task: MigrationTask, props: dict[str, Any], *, first: bool
    ) -> tuple[CheckedRelease | None, list[str]]:
        """The release gate: what the new image reports, and the problems `force` let through.

        On a stack's first release the check task itself migrates an empty database: nothing runs
        on it that the gate could protect (a refusal then leaves no service changed: none exists)."""
        force = bool(props.get("force"))
        try:
            checked = run_release_check(
                clients.ecs,
                clients.logs,
                task,
                migrate_if_empty=first,
                poll_interval_seconds=self._poll_interval_seconds,
                sleep=self._sleep,
                clock=self._clock,
            )
        except ReleaseCheckError as error:
            if not force:
                raise
            return None, [str(error)]
        problems = release_problems(checked.state, props.get("consumed_queues") or [])
        if problems and not force:
            raise ReleaseRefusedError(problems)
        return checked, [str(problem) for problem in problems]


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
