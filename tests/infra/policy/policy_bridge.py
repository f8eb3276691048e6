"""Runs the policy pack's rules on a program run recorded under Pulumi mocks, as the CLI would.

`pulumi preview/up --policy-pack` hands the pack's analyzer each resource's inputs (resource
policies) and, once the stack is done, every resource's outputs (stack policies). The analyzer
wraps the properties in read-only proxies, applies the enforcement levels and per-policy config of
`--policy-pack-config`, and reports violations. This module does the same in-process with the
public pulumi_policy types, so a test sees the violations and levels `pulumi preview` would print.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulumi.runtime.mocks import MockResourceArgs
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
)
from pulumi_policy.proxy import unknown_checking_proxy

from infra.policy.rules.pack import RULES
from infra.policy.rules.shared import Rule
from infra.policy.rules.tiers import Tier
from testkit.program import FabricatingMocks, RecordedResource, project_name

POLICY_DIR = Path(__file__).resolve().parents[3] / "infra" / "policy"
PACK_DEFAULT_LEVEL = "mandatory"  # __main__.py: enforcement_level=MANDATORY


@dataclass(frozen=True)
class Violation:
    rule: str
    level: str  # "mandatory" or "advisory"
    urn: str
    message: str

    def __str__(self) -> str:
        return f"[{self.level}] {self.rule} on {self.urn}: {self.message}"


def tier_config(tier: Tier) -> dict[str, Any]:
    """The committed `--policy-pack-config` file of a stack tier."""
    return json.loads((POLICY_DIR / f"{tier}.json").read_text())


@functools.cache
def _component_type_prefix() -> str:
    return f"{project_name()}:"  # the program's own ComponentResource types, e.g. djcelery:index:Release


def outputs(resource: RecordedResource) -> dict[str, Any]:
    """The resource's state after `up`: the program got exactly this answer from the mocks, which
    are deterministic, so asking them again reproduces it (including the id)."""
    is_component = resource.type.startswith(_component_type_prefix())
    resource_id, state = FabricatingMocks().new_resource(
        MockResourceArgs(resource.type, resource.name, resource.inputs, custom=not is_component)
    )
    return {**state, "id": resource_id} if resource_id else state


def _policy_resource(resource: RecordedResource, props: Mapping[str, Any], protect: bool) -> PolicyResource:
    options = PolicyResourceOptions(
        protect=protect,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
        parent=resource.parent,
    )
    # The analyzer hands policies read-only Mapping/Sequence proxies, never dicts and lists.
    proxied = unknown_checking_proxy(json.loads(json.dumps(props)))
    return PolicyResource(resource.type, proxied, resource.urn, resource.name, options, None, None, [], {})


def _as_entry(value: str | Mapping[str, Any]) -> dict[str, Any]:
    # A config entry is either just an enforcement level or an object with one and properties.
    return {"enforcementLevel": value} if isinstance(value, str) else dict(value)


def _level_and_properties(rule: Rule, config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    entry = _as_entry(config.get(rule.name, {}))
    default_level = _as_entry(config.get("all", PACK_DEFAULT_LEVEL))["enforcementLevel"]
    return entry.pop("enforcementLevel", default_level), entry


def _collector(violations: list[Violation], rule: str, level: str, urn: str) -> ReportViolation:
    def report(message: str, reported_urn: str | None = None) -> None:
        violations.append(Violation(rule, level, reported_urn or urn, message))

    return report


def evaluate(
    resources: Sequence[RecordedResource],
    config: Mapping[str, Any],
    protected: Iterable[str] | None = None,
    rules: Iterable[Rule] = RULES,
) -> list[Violation]:
    """Every violation the rules report on these resources under one policy config.

    `protected` lists the URNs declared with the `protect` resource option; by default, those the
    program declared so.
    """
    protected_urns = (
        set(protected) if protected is not None else {r.urn for r in resources if r.options.get("protect")}
    )
    declared = [_policy_resource(r, r.inputs, r.urn in protected_urns) for r in resources]
    deployed = [_policy_resource(r, outputs(r), r.urn in protected_urns) for r in resources]
    violations: list[Violation] = []
    for rule in rules:
        level, properties = _level_and_properties(rule, config)
        if level == "disabled":
            continue
        if isinstance(rule.policy, ResourceValidationPolicy):
            for resource in declared:
                args = ResourceValidationArgs(
                    resource.resource_type,
                    resource.props,
                    resource.urn,
                    resource.name,
                    resource.opts,
                    None,
                    properties,
                )
                # As in the analyzer, a resource policy's violations belong to that resource.
                rule.policy.validate(args, _collector(violations, rule.name, level, resource.urn))
        else:
            rule.policy.validate(
                StackValidationArgs(deployed, properties), _collector(violations, rule.name, level, "")
            )
    return violations
