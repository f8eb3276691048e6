"""A realistic mistake: one input (or resource option) of one recorded resource changed the way a
careless edit would change it. Each area's test module lists the mistakes of its rules; each must
fire exactly its rule, so no rule can pass vacuously.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from infra.policy.rules.shared import LISTENER, Rule
from infra.policy.rules.tiers import Tier
from testkit.program import ProgramRun, RecordedResource
from tests.infra.policy.policy_bridge import Violation, evaluate, tier_config

# Runs of the real program (see conftest.py `runs`) and the tier whose config each is checked with.
TIER_OF_RUN: dict[str, Tier] = {
    "prod": "prod",
    "prod-https": "prod",
    "dev": "dev",
    "ephemeral": "ephemeral",
    "ephemeral-https": "ephemeral",
    "preview-base": "preview-base",
    "preview": "preview",
}

Inputs = dict[str, Any]
Runs = dict[str, ProgramRun]
Baseline = dict[str, list[Violation]]


@dataclasses.dataclass(frozen=True)
class Mistake:
    rule: str
    run: str  # the program run (a key of TIER_OF_RUN) whose recorded resource is changed
    pick: Callable[[ProgramRun], RecordedResource]
    change: Callable[[Inputs], None]  # edits a copy of the picked resource's inputs
    what: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # resource options to set
    as_type: str | None = None  # declare the picked resource as another type (what a stack must not own)

    def __str__(self) -> str:
        return f"{self.rule}: {self.what}"


def listing(violations: list[Violation]) -> str:
    return "\n".join(f"  {violation}" for violation in violations) or "  (none)"


# --- Which recorded resource a mistake changes ----------------------------------------------------


def only(resource_type: str) -> Callable[[ProgramRun], RecordedResource]:
    return lambda run: run.one(resource_type)


def first(resource_type: str) -> Callable[[ProgramRun], RecordedResource]:
    def pick(run: ProgramRun) -> RecordedResource:
        candidates = run.of_type(resource_type)
        assert candidates, f"stack {run.stack} declares no {resource_type}"
        return candidates[0]

    return pick


def media(resource_type: str) -> Callable[[ProgramRun], RecordedResource]:
    return lambda run: run.one(resource_type, "media")


def listener(protocol: str) -> Callable[[ProgramRun], RecordedResource]:
    def pick(run: ProgramRun) -> RecordedResource:
        matches = [r for r in run.of_type(LISTENER) if r.inputs.get("protocol") == protocol]
        assert matches, f"stack {run.stack} has no {protocol} listener"
        return matches[0]

    return pick


# --- How it changes the inputs --------------------------------------------------------------------


def set_to(key: str, value: Any) -> Callable[[Inputs], None]:
    return lambda inputs: inputs.__setitem__(key, value)


def drop(key: str) -> Callable[[Inputs], None]:
    return lambda inputs: inputs.pop(key, None)


def set_parameter(name: str, value: str) -> Callable[[Inputs], None]:
    """Changes one parameter of an RDS or ElastiCache parameter group."""

    def change(inputs: Inputs) -> None:
        [parameter] = [p for p in inputs["parameters"] if p["name"] == name]
        parameter["value"] = value

    return change


def leave_inputs(inputs: Inputs) -> None:
    """For a mistake in the resource options only."""


# --- The checks every area's test module makes ----------------------------------------------------


def assert_every_rule_has_a_mistake(rules: Iterable[Rule], mistakes: Iterable[Mistake]) -> None:
    untested = {rule.name for rule in rules} - {mistake.rule for mistake in mistakes}
    assert not untested, f"rules without a negative test: {sorted(untested)}"


def assert_fires_exactly_its_rule(mistake: Mistake, runs: Runs, baseline: Baseline) -> None:
    run = runs[mistake.run]
    target = mistake.pick(run)
    inputs = copy.deepcopy(target.inputs)
    mistake.change(inputs)
    options = {**target.options, **mistake.options}
    resource_type = mistake.as_type or target.type
    assert (inputs, options, resource_type) != (target.inputs, target.options, target.type), (
        f"{mistake}: {target.urn} is unchanged"
    )
    changed = [
        dataclasses.replace(r, type=resource_type, inputs=inputs, options=options) if r is target else r
        for r in run.resources
    ]

    new = [
        v for v in evaluate(changed, tier_config(TIER_OF_RUN[mistake.run])) if v not in baseline[mistake.run]
    ]

    assert {v.rule for v in new} == {mistake.rule}, (
        f"changing {target.urn} ({mistake.what}) should fire exactly {mistake.rule}; "
        f"new violations:\n{listing(new)}"
    )
