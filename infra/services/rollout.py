"""Did ECS really roll out the new task definition, or did its circuit breaker roll it back?

With `wait_for_steady_state`, the AWS provider reports success once the service is steady, also
when the deployment circuit breaker has rolled it back to the previous revision
(hashicorp/terraform-provider-aws #19519, #20858): `pulumi up` would report a release that never
happened. After the service update, this looks at the service's PRIMARY deployment: it must run
the new task definition and reach COMPLETED (`check_rollout`, a plain function over a boto3 ECS
client). `RolloutCheck` declares that check after a service's update, through a dynamic resource
whose provider (`RolloutCheckProvider`, pickled by reference) runs it once per new task definition.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from infra.dynamic_providers import RunOnChangeProvider
from infra.ecs_tasks import Clock, Sleep
from infra.services.fargate import FargateService

DEFAULT_POLL_INTERVAL_SECONDS = 10.0
# Recent service events quoted in a failure: the circuit breaker says why it rolled back there.
EVENTS_SHOWN = 5
PREVIOUS_VERSION_SERVES = "The previous version keeps serving; fix the cause and run `pulumi up` again."


class RolloutError(Exception):
    """The new version is not what serves; the message is meant for the person running `pulumi up`."""


@dataclass(frozen=True)
class RolloutTarget:
    cluster: str
    service: str
    task_definition_arn: str  # the revision this update deploys
    timeout_seconds: float


def check_rollout(
    ecs: Any,
    target: RolloutTarget,
    *,
    poll_interval_seconds: float = DEFAULT_POLL_INTERVAL_SECONDS,
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
) -> str:
    """Waits until the PRIMARY deployment of the new revision is COMPLETED; returns its id.

    Raises RolloutError when ECS rolled back to another revision, the rollout FAILED, or it is
    still in progress at the deadline.
    """
    deadline = clock() + target.timeout_seconds
    while True:
        service = _describe(ecs, target)
        primary = _primary(service, target)
        if primary["taskDefinition"] != target.task_definition_arn:
            raise RolloutError(
                f"ECS rolled the {target.service} deployment back: it runs {primary['taskDefinition']}, "
                f"not {target.task_definition_arn}.{_events(service)}\n{PREVIOUS_VERSION_SERVES}"
            )
        state = primary.get("rolloutState", "COMPLETED")
        if state == "COMPLETED":
            return str(primary["id"])
        if state == "FAILED":
            reason = primary.get("rolloutStateReason", "no reason given")
            raise RolloutError(
                f"the {target.service} deployment of {target.task_definition_arn} failed: {reason}."
                f"{_events(service)}\n{PREVIOUS_VERSION_SERVES}"
            )
        if clock() >= deadline:
            raise RolloutError(
                f"the {target.service} deployment of {target.task_definition_arn} was still {state} "
                f"after {target.timeout_seconds:g} s.{_events(service)}\n"
                "Check the service before running `pulumi up` again."
            )
        sleep(poll_interval_seconds)


def _describe(ecs: Any, target: RolloutTarget) -> Mapping[str, Any]:
    response = ecs.describe_services(cluster=target.cluster, services=[target.service])
    services = response.get("services") or []
    if not services or services[0].get("status") != "ACTIVE":
        raise RolloutError(f"ECS has no active service {target.service} in cluster {target.cluster}")
    service: Mapping[str, Any] = services[0]
    return service


def _primary(service: Mapping[str, Any], target: RolloutTarget) -> Mapping[str, Any]:
    primaries = [
        deployment for deployment in service.get("deployments", []) if deployment.get("status") == "PRIMARY"
    ]
    if not primaries:
        raise RolloutError(f"the {target.service} service has no PRIMARY deployment")
    primary: Mapping[str, Any] = primaries[0]
    return primary


def _events(service: Mapping[str, Any]) -> str:
    messages = [event["message"] for event in service.get("events", [])[:EVENTS_SHOWN]]
    return "".join(f"\n  {message}" for message in messages)


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


@dataclass(frozen=True)
class RolloutCheckArgs:
    cluster: pulumi.Input[str]
    service: pulumi.Input[str]  # the service's name
    task_definition_arn: pulumi.Input[str]  # the revision the service update deploys
    region: pulumi.Input[str]
    timeout_seconds: int
    service_resource: pulumi.Resource  # checked once its update is done


class RolloutVerification(pulumi.dynamic.Resource):
    deployment_id: pulumi.Output[str]

    def __init__(self, name: str, args: RolloutCheckArgs, opts: pulumi.ResourceOptions) -> None:
        props = {
            "cluster": args.cluster,
            "service": args.service,
            "task_definition_arn": args.task_definition_arn,
            "region": args.region,
            "timeout_seconds": args.timeout_seconds,
            "deployment_id": None,  # filled in by the provider
        }
        super().__init__(RolloutCheckProvider(), name, props, opts)


class RolloutCheck(pulumi.ComponentResource):
    """After each new task definition of a service: fail `pulumi up` if ECS rolled it back."""

    def __init__(self, name: str, args: RolloutCheckArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("djcelery:index:RolloutCheck", name, None, opts)
        verification = RolloutVerification(
            f"{name}-verify", args, pulumi.ResourceOptions(parent=self, depends_on=[args.service_resource])
        )
        self.deployment_id = verification.deployment_id
        self.register_outputs({"deployment_id": self.deployment_id})


def verify_rollout(
    service: FargateService,
    cluster_arn: pulumi.Input[str],
    region: pulumi.Input[str],
    timeout_seconds: int,
    opts: pulumi.ResourceOptions,
) -> RolloutCheck:
    """`pulumi up` fails if ECS rolled back the deployment of `service`'s task definition."""
    return RolloutCheck(
        f"{service.key}-rollout",
        RolloutCheckArgs(
            cluster_arn,
            service.service_name,
            service.task.task_definition_arn,
            region,
            timeout_seconds,
            service,
        ),
        opts,
    )
