"""The release phase: migrations run as a one-off ECS task that gates the rollout.

`Release` wraps a dynamic resource whose provider runs the migrate task on create and whenever
the image or the migrate task definition changes, and fails the update if the migration fails.
Web, worker and Beat services `depends_on` the Release, so a failed migration leaves the previous
version serving. The engine never calls create/update during `pulumi preview`, and `diff` ignores
every other input, so a preview or an update with no new release runs nothing.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pulumi
from botocore.config import Config
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

from infra.release.runner import (
    DEFAULT_POLL_INTERVAL_SECONDS,
    Clock,
    MigrationResult,
    MigrationTask,
    Sleep,
    run_migration,
)

MIGRATE_CONTAINER_NAME = "migrate"
DEFAULT_TIMEOUT_SECONDS = 15 * 60
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


@dataclass(frozen=True)
class ReleaseArgs:
    cluster: pulumi.Input[str]  # name or ARN
    task_definition_arn: pulumi.Input[str]  # the migrate task definition
    image: pulumi.Input[str]  # the image reference with its digest, repo@sha256:...
    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    security_group_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    assign_public_ip: bool
    log_group_name: pulumi.Input[str]
    region: pulumi.Input[str]
    container_name: str = MIGRATE_CONTAINER_NAME
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        if self.timeout_seconds <= 0:
            raise ValueError(
                f"release timeout must be a positive number of seconds, got {self.timeout_seconds}"
            )
        if not self.container_name:
            raise ValueError("release container name must not be empty")


class MigrationProvider(ResourceProvider):
    """Runs the migrate task; an instance of it is pickled into the stack state by Pulumi."""

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
        # `olds` are the outputs of the last successful run, so they name the release now migrated.
        return DiffResult(changes=any(olds.get(key) != news.get(key) for key in RELEASE_TRIGGERS))

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=uuid.uuid4().hex, outs=self._migrate(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._migrate(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # A migration cannot be undone by deleting its record, and destroy must never fail.
        pass

    def _migrate(self, props: dict[str, Any]) -> dict[str, Any]:
        clients = self._clients(props["region"])
        result = run_migration(
            clients.ecs,
            clients.logs,
            migration_task(props),
            poll_interval_seconds=self._poll_interval_seconds,
            sleep=self._sleep,
            clock=self._clock,
        )
        return release_outputs(props, result)

    def __reduce__(self) -> tuple[Callable[..., ResourceProvider], tuple[str, str, str]]:
        # Pulumi unpickles the provider in its own process, whose working directory is the program
        # directory and whose sys.path holds only that directory, so this module may not be importable
        # there under the name it has here. Rebuild it with a loader that dill pickles by value and
        # that first puts this module's import root on sys.path. The root is stored relative to the
        # program directory, so the state does not pin one checkout path. Test doubles are dropped.
        import_root = Path(__file__).resolve().parents[__name__.count(".")]
        return (_provider_loader(), (os.path.relpath(import_root), __name__, type(self).__qualname__))


def _provider_loader() -> Callable[[str, str, str], ResourceProvider]:
    # A nested function cannot be found by name, so dill pickles its code instead of a reference.
    def load(import_root: str, module: str, name: str) -> ResourceProvider:
        root = os.path.abspath(import_root)
        if root not in sys.path:
            sys.path.insert(0, root)
        return getattr(importlib.import_module(module), name)()

    return load


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


def release_outputs(props: dict[str, Any], result: MigrationResult) -> dict[str, Any]:
    """The resource state: the inputs of this release (what `diff` compares) and how it ran."""
    return {
        **props,
        "task_arn": result.task_arn,
        "exit_code": result.exit_code,
        "duration_seconds": result.duration_seconds,
    }


class MigrationRun(pulumi.dynamic.Resource):
    task_arn: pulumi.Output[str]
    exit_code: pulumi.Output[int]
    duration_seconds: pulumi.Output[float]
    task_definition_arn: pulumi.Output[str]

    def __init__(self, name: str, args: ReleaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        props = {
            "cluster": args.cluster,
            "task_definition_arn": args.task_definition_arn,
            "image": args.image,
            "subnet_ids": args.subnet_ids,
            "security_group_ids": args.security_group_ids,
            "assign_public_ip": args.assign_public_ip,
            "log_group_name": args.log_group_name,
            "container_name": args.container_name,
            "region": args.region,
            "timeout_seconds": args.timeout_seconds,
            # Outputs, filled in by the provider.
            "task_arn": None,
            "exit_code": None,
            "duration_seconds": None,
        }
        super().__init__(MigrationProvider(), name, props, opts)


class Release(pulumi.ComponentResource):
    """Migrations for one release. Make every service `depends_on` it."""

    def __init__(self, name: str, args: ReleaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("djcelery:index:Release", name, None, opts)
        run = MigrationRun(f"{name}-migrate", args, pulumi.ResourceOptions(parent=self))
        self.task_arn = run.task_arn
        self.exit_code = run.exit_code
        self.duration_seconds = run.duration_seconds
        self.task_definition_arn = run.task_definition_arn
        self.register_outputs(
            {
                "task_arn": self.task_arn,
                "exit_code": self.exit_code,
                "duration_seconds": self.duration_seconds,
                "task_definition_arn": self.task_definition_arn,
            }
        )
