"""The check that refuses a new preview on a full base, before its target group and rule exist.

A preview takes one listener rule and one target group. The base's `previewCapacity` (at most the
ALB's 100 rules and 100 target groups) caps its rules; the account's 3,000 target groups per
Region, shared by every load balancer, cap the target groups (Elastic Load Balancing quotas:
https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-limits.html).
Past either, CreateRule or CreateTargetGroup would fail halfway through the preview's first
`pulumi up` with TooManyRules or TooManyTargetGroups; this check fails first, with what to do.
It runs once, when the preview is created: an existing preview already holds its rule.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pulumi
from botocore.config import Config
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

from infra.dynamic_providers import changed, provider_refreshed

TARGET_GROUPS_PER_REGION = 3000


class PreviewRefusedError(Exception):
    """The base cannot take this preview; the message says why and what to do."""


def elbv2_client(region: str) -> Any:
    config = Config(retries={"mode": "standard", "max_attempts": 10})
    return boto3.session.Session(region_name=region).client("elbv2", config=config)


def _pages(call: Callable[..., Any], key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item of a Marker-paged Describe call (DescribeRules has no botocore paginator)."""
    marker = None
    while True:
        page = call(**kwargs, **({"Marker": marker} if marker else {}))
        yield from page.get(key, [])
        marker = page.get("NextMarker")
        if not marker:
            return


def capacity_problem(elbv2: Any, props: dict[str, Any]) -> str | None:
    """Why the base cannot take one more preview, or None."""
    capacity = int(props["capacity"])
    rules = [rule for rule in _pages(elbv2.describe_rules, "Rules", ListenerArn=props["listener_arn"])]
    previews = sum(1 for rule in rules if not rule.get("IsDefault"))
    if previews >= capacity:
        return (
            f"the preview base is full: its listener holds {previews} preview rules and its "
            f"previewCapacity is {capacity}. Close a pull request (its preview is destroyed), let the "
            "janitor remove orphans, or raise previewCapacity on the base (at most 100, the "
            "ALB's rules and target groups quota)"
        )
    target_groups = sum(1 for _ in _pages(elbv2.describe_target_groups, "TargetGroups"))
    if target_groups >= TARGET_GROUPS_PER_REGION:
        return (
            f"the account holds {target_groups} target groups in this Region, its quota of "
            f"{TARGET_GROUPS_PER_REGION}: remove unused ones or ask AWS for more"
        )
    limit, base_limit = int(props["connection_limit"]), int(props["base_connection_limit"])
    if limit > base_limit:
        return (
            f"previewConnectionLimit {limit} is above the base's {base_limit}, which its database "
            "is sized for: lower it in the preview's stack file"
        )
    return None


class PreviewCapacityProvider(ResourceProvider):
    """Checks the base on create; updates only store the current provider; deletes nothing."""

    def __init__(self, clients: Callable[[str], Any] = elbv2_client) -> None:
        super().__init__()
        self._clients = clients

    def create(self, props: dict[str, Any]) -> CreateResult:
        problem = capacity_problem(self._clients(props["region"]), props)
        if problem:
            raise PreviewRefusedError(f"Preview refused: {problem}.")
        return CreateResult(id_=uuid.uuid4().hex, outs=props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return DiffResult(changes=changed(olds, news, ()))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=provider_refreshed(olds, news, ()) or {})


class PreviewCapacity(pulumi.dynamic.Resource):
    """Present once the base had room for this preview; its rule and target group depend on it."""

    def __init__(
        self,
        name: str,
        props: dict[str, pulumi.Input[Any]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(PreviewCapacityProvider(), name, props, opts)
