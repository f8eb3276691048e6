"""How the engine matches a program's resources with the ones in the state: URNs and aliases.

A resource whose URN changes (a new parent component, a renamed type) is, to the engine, a new
resource to create and an old one to delete, unless an alias names the old URN. Creating the new
one first fails for anything with a fixed physical name (an ECS service, a log group) and the
delete that follows removes what the new one just registered (a scalable target): a refactor that
moves resources between components must alias every one of them.

The mocks' URNs are not the engine's: the mock monitor puts only the parent's own type before the
resource's type and keeps the root stack's, where the engine (`Deployment.generateURN`) puts the
parent's whole type chain and leaves the root stack out. `engine_urns` gives the engine's.

Matching is the engine's own rule (pkg/resource/deploy/step_generator.go in pulumi/pulumi:
`getOldResource`, `generateAliases`, `collapseAliasToUrn`, `inheritedChildAlias`), applied to the
registrations the program made under mocks, in the order it made them:
- a resource is matched by its URN first, then by each alias in turn;
- an alias spec fills what it leaves empty from the resource (name, type, parent, project, stack);
  an alias parent that was itself matched through an alias stands for its old URN;
- a child of a parent that was matched through an alias also answers to the parent's old URN's
  type chain with its own type and name (the name's parent-name prefix replaced by the old one's);
- two resources claiming one old URN is an error ("Duplicate resource alias").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from testkit.program import RecordedResource

ROOT_STACK_TYPE = "pulumi:pulumi:Stack"


@dataclass(frozen=True)
class Urn:
    """`urn:pulumi:<stack>::<project>::<type chain>::<name>`, the parts the engine composes."""

    stack: str
    project: str
    qualified_type: str  # parent types and the resource's type, joined by '$'
    name: str

    def __str__(self) -> str:
        return f"urn:pulumi:{self.stack}::{self.project}::{self.qualified_type}::{self.name}"

    @property
    def type(self) -> str:
        return self.qualified_type.split("$")[-1]


def parse_urn(urn: str) -> Urn:
    head, project, qualified_type, name = urn.split("::", 3)
    return Urn(head.removeprefix("urn:pulumi:"), project, qualified_type, name)


def create_urn(name: str, type_: str, parent: str, project: str, stack: str) -> str:
    """`resource.CreateURN`: the parent's type chain (none for the root stack), then the type."""
    chain = type_
    if parent:
        parent_chain = parse_urn(parent).qualified_type
        if parent_chain != ROOT_STACK_TYPE:
            chain = f"{parent_chain}${type_}"
    return str(Urn(stack, project, chain, name))


@dataclass
class Matching:
    """The outcome of matching a program's registrations with the old state's URNs."""

    matched: dict[str, str] = field(default_factory=dict)  # old URN -> the new URN that took it
    duplicates: list[str] = field(default_factory=list)  # engine errors: an old URN claimed twice

    def unclaimed(self, olds: Iterable[str]) -> list[str]:
        """Old resources no registration took: the engine deletes them."""
        return sorted(set(olds) - set(self.matched))


def engine_urns(resources: Sequence[RecordedResource]) -> dict[str, str]:
    """Mock URN -> the URN the engine gives the same registration (parents come first)."""
    urns: dict[str, str] = {}
    for resource in resources:
        mock = parse_urn(resource.urn)
        parent = urns[resource.parent] if resource.parent else ""
        urns[resource.urn] = create_urn(resource.name, resource.type, parent, mock.project, mock.stack)
    return urns


def match_state(resources: Sequence[RecordedResource], olds: Iterable[str]) -> Matching:
    """Matches each registration, in order, with the old URNs the way the step generator does."""
    old_urns = set(olds)
    urns = engine_urns(resources)
    seen_new: set[str] = set()
    aliases_used: dict[str, str] = {}  # new URN -> the old URN it was matched by (alias only)
    matching = Matching()
    for resource in resources:
        urn = urns[resource.urn]
        parent = urns[resource.parent] if resource.parent else ""
        aliases = generate_aliases(urn, parent, resource.alias_specs, aliases_used)
        for candidate in [urn, *aliases]:
            if candidate not in old_urns:
                continue
            if candidate != urn:
                if candidate in seen_new or candidate in matching.matched:
                    matching.duplicates.append(f"{candidate} claimed again by {urn}")
                aliases_used[urn] = candidate
            matching.matched[candidate] = urn
            break
        seen_new.add(urn)
    return matching


def generate_aliases(
    new_urn: str, parent: str, specs: Sequence[dict[str, Any]], aliases_used: dict[str, str]
) -> list[str]:
    """`generateAliases`: the old URNs a registration answers to besides its own, given which
    registrations before it were matched through an alias (`aliases_used`: new URN -> old URN)."""
    urn = parse_urn(new_urn)
    own = [_collapse(spec, urn, parent, aliases_used) for spec in specs]
    result = list(dict.fromkeys(own))
    parent_alias = aliases_used.get(parent) if parent else None
    if parent_alias is not None:
        parent_name = parse_urn(parent).name
        for type_, name in [(urn.type, urn.name), *((parse_urn(a).type, parse_urn(a).name) for a in own)]:
            inherited = _inherited_child_alias(type_, name, parent_name, parent_alias, urn)
            if inherited not in result:
                result.append(inherited)
    return result


def _collapse(spec: dict[str, Any], urn: Urn, parent: str, aliases_used: dict[str, str]) -> str:
    if spec.get("urn"):
        return str(spec["urn"])
    named_parent = str(spec.get("parentUrn") or "")
    alias_parent = aliases_used.get(named_parent, named_parent) if named_parent else parent
    if spec.get("noParent") or (alias_parent and parse_urn(alias_parent).qualified_type == ROOT_STACK_TYPE):
        alias_parent = ""
    return create_urn(
        str(spec.get("name") or urn.name),
        str(spec.get("type") or urn.type),
        alias_parent,
        str(spec.get("project") or urn.project),
        str(spec.get("stack") or urn.stack),
    )


def _inherited_child_alias(type_: str, name: str, parent_name: str, parent_alias: str, urn: Urn) -> str:
    old_parent = parse_urn(parent_alias)
    alias_name = old_parent.name + name[len(parent_name) :] if name.startswith(parent_name) else name
    return str(Urn(urn.stack, urn.project, f"{old_parent.qualified_type}${type_}", alias_name))
