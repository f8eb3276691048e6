"""The `pulumi up` after a web deployment: ECS has rewritten the listener rules' weights, and the
program must not put its own back (traffic would go to a target group without tasks).

The state after the deployment is what a refresh reads from AWS: the rules forward everything to
the group ECS deployed to. The engine diffs the program's inputs against it after applying the
`ignoreChanges` the program registered (testkit/engine/updates.py, the engine's own rule)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from testkit.engine.updates import parse_path, proposed_changes, with_ignored_changes
from testkit.program import ProgramRun

RULE = "aws:lb/listenerRule:ListenerRule"
TRAFFIC_RULES = ("web-traffic-production", "web-traffic-test")


def after_ecs_deployment(inputs: dict[str, Any]) -> dict[str, Any]:
    """The rule as ECS leaves it after a deployment to the alternate group: every weight moved."""
    deployed = copy.deepcopy(inputs)
    groups = deployed["actions"][0]["forward"]["targetGroups"]
    for group in groups:
        group["weight"] = 100 - group["weight"]
    return deployed


@pytest.mark.parametrize("name", TRAFFIC_RULES)
def test_the_up_after_a_deployment_proposes_no_change_to_the_rules_ecs_owns(
    prod_run: ProgramRun, name: str
) -> None:
    declared = prod_run.one(RULE, name)
    refreshed = after_ecs_deployment(declared.inputs)
    ignored = declared.options["ignoreChanges"]
    assert proposed_changes(refreshed, declared.inputs, ignored) == [], (
        f"{name}: the next `pulumi up` would move traffic back to the target group ECS just emptied"
    )
    # Without it, the engine would propose exactly that (pulumi-aws #5771).
    assert proposed_changes(refreshed, declared.inputs) == ["actions"]


def test_a_change_the_program_makes_to_a_rule_is_still_proposed(prod_run: ProgramRun) -> None:
    """Only the actions are ECS's: a new priority or condition still reaches AWS."""
    declared = prod_run.one(RULE, "web-traffic-production")
    moved = {**declared.inputs, "priority": declared.inputs["priority"] + 1}
    changes = proposed_changes(
        after_ecs_deployment(declared.inputs), moved, declared.options["ignoreChanges"]
    )
    assert changes == ["priority"]


def test_paths_are_parsed_and_reset_like_the_engine_does() -> None:
    """sdk/go/common/resource/properties_path.go: keys, indexes and `*`; a path the old inputs
    lack is removed from the new ones."""
    assert parse_path("actions[0].forward.targetGroups[*].weight") == [
        "actions",
        0,
        "forward",
        "targetGroups",
        "*",
        "weight",
    ]
    old = {"tags": {"a": "1"}, "groups": [{"weight": 0}, {"weight": 100}]}
    new = {"tags": {"a": "2"}, "groups": [{"weight": 100}, {"weight": 0}], "extra": True}
    assert with_ignored_changes(new, old, ("groups[*].weight", "extra")) == {
        "tags": {"a": "2"},
        "groups": [{"weight": 0}, {"weight": 100}],
    }
    assert proposed_changes(old, new, ("groups[1].weight",)) == ["extra", "groups", "tags"]
