"""The dependency graph the engine builds from a program's registrations, and what it waits for.

The engine creates a resource as soon as every resource it depends on exists; it deletes one only
after every resource depending on it is gone. The SDK sends, per registration, the URNs of its
`depends_on` and of the resources its inputs came from; a dependency on a local component stands
for all of that component's descendants (`pulumi/runtime/rpc.py` `_add_dependency`). This is that
graph, over the resources recorded from a program run under mocks.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property

from testkit.program import ProgramRun, RecordedResource

PROVIDER_TYPE_PREFIX = "pulumi:providers:"


class DependencyGraph:
    def __init__(self, run: ProgramRun) -> None:
        self.run = run
        self.by_urn = {resource.urn: resource for resource in run.resources}

    @cached_property
    def _children(self) -> dict[str, list[RecordedResource]]:
        children: dict[str, list[RecordedResource]] = {}
        for resource in self.run.resources:
            if resource.parent:
                children.setdefault(resource.parent, []).append(resource)
        return children

    def is_component(self, resource: RecordedResource) -> bool:
        return resource.urn in self._children and not resource.id

    def descendants(self, resource: RecordedResource) -> list[RecordedResource]:
        found: list[RecordedResource] = []
        pending = list(self._children.get(resource.urn, []))
        while pending:
            child = pending.pop()
            found.append(child)
            pending.extend(self._children.get(child.urn, []))
        return found

    def direct_dependencies(self, resource: RecordedResource) -> set[str]:
        """What the engine waits for before creating `resource` (components stand for their
        descendants; a resource created by an explicit provider also waits for that provider)."""
        urns: set[str] = set()
        for urn in resource.dependencies:
            dependency = self.by_urn.get(urn)
            if dependency is not None and self.is_component(dependency):
                urns.update(descendant.urn for descendant in self.descendants(dependency))
            else:
                urns.add(urn)
        provider = self.provider_of(resource)
        if provider is not None:
            urns.add(provider.urn)
        return urns

    def provider_of(self, resource: RecordedResource) -> RecordedResource | None:
        reference = str(resource.options.get("provider") or "")
        urn = reference.rsplit("::", 1)[0] if reference else ""
        return self.by_urn.get(urn)

    @cached_property
    def _waits_for(self) -> dict[str, frozenset[str]]:
        closure: dict[str, frozenset[str]] = {}

        def visit(urn: str, trail: tuple[str, ...]) -> frozenset[str]:
            if urn in closure:
                return closure[urn]
            if urn in trail:
                raise AssertionError(f"dependency cycle: {' -> '.join((*trail, urn))}")
            resource = self.by_urn.get(urn)
            direct = self.direct_dependencies(resource) if resource else set()
            reached = set(direct)
            for dependency in direct:
                reached |= visit(dependency, (*trail, urn))
            closure[urn] = frozenset(reached)
            return closure[urn]

        for resource in self.run.resources:
            visit(resource.urn, ())
        return closure

    def waits_for(self, resource: RecordedResource) -> frozenset[str]:
        """Everything created before `resource`, transitively."""
        return self._waits_for[resource.urn]

    def custom_resources(self) -> list[RecordedResource]:
        return [resource for resource in self.run.resources if not self.is_component(resource)]

    def dependents(self) -> dict[str, set[str]]:
        """For every resource, the resources that depend on it directly (deleted before it)."""
        reverse: dict[str, set[str]] = {resource.urn: set() for resource in self.run.resources}
        for resource in self.custom_resources():
            for urn in self.direct_dependencies(resource):
                reverse.setdefault(urn, set()).add(resource.urn)
        return reverse

    def find(self, type_token: str, **inputs: object) -> list[RecordedResource]:
        """Resources of a type whose inputs (or computed state) match every given value."""
        return [
            resource
            for resource in self.run.of_type(type_token)
            if all(_value(resource, key) == value for key, value in inputs.items())
        ]

    def with_identity(self, type_token: str, identities: Iterable[object]) -> list[RecordedResource]:
        """Resources of a type whose id, ARN or name is one of `identities`."""
        wanted = {str(identity) for identity in identities}
        return [
            resource
            for resource in self.run.of_type(type_token)
            if wanted & {resource.id, str(resource.state.get("arn")), str(resource.state.get("name"))}
        ]


def _value(resource: RecordedResource, key: str) -> object:
    return resource.inputs.get(key, resource.state.get(key))
