"""What the program's dynamic providers share: the copy of themselves in the stack state, and the
provider that runs something once per change of its triggers.

The SDK pickles the provider into each dynamic resource's `__provider` property, and the engine
rebuilds it from the state's copy for `destroy`, `refresh` and `read`, without running the program
(pulumi/pulumi#6285). A `diff` that looked only at the resource's own inputs would keep that copy
forever, so a later release that moves or renames a name it refers to would break `destroy` of every
existing stack. These two functions make a provider-only difference an update that stores the
current provider and does nothing else.
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

from infra.ecs_tasks import DEFAULT_POLL_INTERVAL_SECONDS, Clock, Sleep

# Where the SDK keeps the pickled provider in a dynamic resource's inputs and outputs.
PROVIDER_KEY = "__provider"


def changed(olds: dict[str, Any], news: dict[str, Any], triggers: tuple[str, ...]) -> bool:
    """A trigger changed, or the stored provider is not the current one (which destroy would need)."""
    return any(olds.get(key) != news.get(key) for key in (*triggers, PROVIDER_KEY))


def provider_refreshed(
    olds: dict[str, Any], news: dict[str, Any], triggers: tuple[str, ...]
) -> dict[str, Any] | None:
    """The outputs of an update that only replaces the stored provider: the previous outputs as they
    are (the SDK stores the new provider with them); None when a trigger changed, and the work runs."""
    if any(olds.get(key) != news.get(key) for key in triggers):
        return None
    return {key: value for key, value in olds.items() if key != PROVIDER_KEY}


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
        return DiffResult(changes=changed(olds, news, self.TRIGGERS))

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=uuid.uuid4().hex, outs=self._run(props))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        refreshed = provider_refreshed(olds, news, self.TRIGGERS)
        return UpdateResult(outs=self._run(news) if refreshed is None else refreshed)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        pass

    def _run(self, props: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError
