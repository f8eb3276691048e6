"""The alias model gives the engine's answers: the cases of the engine's own test
(pkg/resource/deploy/step_generator_test.go `TestGenerateAliases` in pulumi/pulumi), verbatim."""

from __future__ import annotations

import pytest

from testkit.engine.aliases import create_urn, generate_aliases

PROJECT, STACK = "project", "stack"
PARENT = create_urn("myres", "test:resource:type", "", PROJECT, STACK)
CHILD = create_urn("myres-child", "test:resource:child", PARENT, PROJECT, STACK)
PARENT_TYPE_ALIAS = create_urn("myres", "test:resource:type2", "", PROJECT, STACK)
PARENT_NAME_ALIAS = create_urn("myres2", "test:resource:type", "", PROJECT, STACK)
ORIGINAL_PARENT = create_urn("originalparent", "test:resource:original", "", PROJECT, STACK)

CASES = {
    "no aliases": (None, [], []),
    "child alias (type), no parent aliases": (
        None,
        [{"type": "test:resource:child2"}],
        ["urn:pulumi:stack::project::test:resource:type$test:resource:child2::myres-child"],
    ),
    "child alias (name), no parent aliases": (
        None,
        [{"name": "child2"}],
        ["urn:pulumi:stack::project::test:resource:type$test:resource:child::child2"],
    ),
    "child alias (type, noParent), no parent aliases": (
        None,
        [{"type": "test:resource:child2", "noParent": True}],
        ["urn:pulumi:stack::project::test:resource:child2::myres-child"],
    ),
    "child alias (type, parent), no parent aliases": (
        None,
        [{"type": "test:resource:child2", "parentUrn": ORIGINAL_PARENT}],
        ["urn:pulumi:stack::project::test:resource:original$test:resource:child2::myres-child"],
    ),
    "child alias (name), parent alias (type)": (
        PARENT_TYPE_ALIAS,
        [{"name": "myres-child2"}],
        [
            "urn:pulumi:stack::project::test:resource:type$test:resource:child::myres-child2",
            "urn:pulumi:stack::project::test:resource:type2$test:resource:child::myres-child",
            "urn:pulumi:stack::project::test:resource:type2$test:resource:child::myres-child2",
        ],
    ),
    "child alias (name), parent alias (name)": (
        PARENT_NAME_ALIAS,
        [{"name": "myres-child2"}],
        [
            "urn:pulumi:stack::project::test:resource:type$test:resource:child::myres-child2",
            "urn:pulumi:stack::project::test:resource:type$test:resource:child::myres2-child",
            "urn:pulumi:stack::project::test:resource:type$test:resource:child::myres2-child2",
        ],
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_aliases_are_generated_as_the_engine_generates_them(case: str) -> None:
    parent_alias, specs, expected = CASES[case]
    used = {PARENT: parent_alias} if parent_alias else {}
    assert generate_aliases(CHILD, PARENT, specs, used) == expected, case
