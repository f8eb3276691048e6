"""What the state holds: the pickled dynamic providers, and a real stack's resources.

The SDK stores the provider as `base64(dill.dumps(provider, recurse=True))` in the `__provider`
property. Anything dill cannot find by name in an importable module, it stores by value: as
bytecode, which another Python version may fail to load (then `pulumi destroy` crashes). This
reads the pickle without loading it and lists every global it names.
"""

from __future__ import annotations

import base64
import pickletools
from collections.abc import Iterator, Mapping
from typing import Any

from testkit.program import ProgramRun, RecordedResource

# dill's constructors of code, functions and classes stored by value.
BY_VALUE_BUILDERS = frozenset(
    {
        "dill._dill._create_code",
        "dill._dill._create_function",
        "dill._dill._create_type",
        "dill._dill._create_cell",
        "dill._dill._load_type",
        "types.CodeType",
        "types.FunctionType",
    }
)


def pickled_globals(serialized: str) -> list[str]:
    """Every `module.name` the pickled provider refers to, in order."""
    return list(_globals(base64.b64decode(serialized)))


def _globals(data: bytes) -> Iterator[str]:
    # The names of a STACK_GLOBAL are the two values pushed last: strings, or memo entries of them.
    pushed: list[object] = []
    memo: dict[int, object] = {}
    for opcode, argument, _ in pickletools.genops(data):
        if opcode.name in {"SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"}:
            pushed.append(argument)
        elif opcode.name == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        elif opcode.name in {"BINPUT", "LONG_BINPUT", "PUT"} and isinstance(argument, int):
            memo[argument] = pushed[-1] if pushed else None
        elif opcode.name in {"BINGET", "LONG_BINGET", "GET"} and isinstance(argument, int):
            pushed.append(memo.get(argument))
        elif opcode.name == "STACK_GLOBAL" and len(pushed) >= 2:
            yield f"{pushed[-2]}.{pushed[-1]}"
            pushed.append(None)  # the global itself, as MEMOIZE may store it next
        elif opcode.name == "GLOBAL":
            yield str(argument).replace(" ", ".")
            pushed.append(None)
        else:
            pushed.append(None)


def stored_by_value(serialized: str) -> list[str]:
    """The by-value constructors a pickle uses: empty when everything is stored by reference."""
    return [name for name in pickled_globals(serialized) if name in BY_VALUE_BUILDERS]


def run_from_deployment(stack: str, deployment: Mapping[str, Any]) -> ProgramRun:
    """A real stack's state (`pulumi stack export`, the `deployment` object) as a ProgramRun, so the
    models that run on the program under mocks (readiness, destroy) run on what a real `up` made.

    Component resources carry no id; resources parented to the stack get no parent, as in a run
    under mocks. Secret values stay encrypted: the models only read names, ids and ARNs.
    """
    resources = []
    for entry in deployment.get("resources") or []:
        if entry["type"] == "pulumi:pulumi:Stack":
            continue
        parent = entry.get("parent")
        if parent and parent.split("::")[2].split("$")[-1] == "pulumi:pulumi:Stack":
            parent = None
        property_dependencies = entry.get("propertyDependencies") or {}
        resources.append(
            RecordedResource(
                type=entry["type"],
                name=entry["urn"].rsplit("::", 1)[-1],
                urn=entry["urn"],
                inputs=dict(entry.get("inputs") or {}),
                parent=parent,
                dependencies=tuple(
                    sorted(set(entry.get("dependencies") or ()).union(*property_dependencies.values()))
                ),
                options={
                    "protect": bool(entry.get("protect")),
                    "retainOnDelete": bool(entry.get("retainOnDelete")),
                    "deleteBeforeReplace": bool(entry.get("deleteBeforeReplace")),
                    "provider": entry.get("provider", ""),
                },
                id=entry.get("id", "") if entry.get("custom") else "",
                state={**(entry.get("outputs") or {}), "id": entry.get("id", "")},
                explicit_dependencies=tuple(entry.get("dependencies") or ()),
                property_dependencies={key: tuple(urns) for key, urns in property_dependencies.items()},
            )
        )
    return ProgramRun(stack=stack, resources=resources, outputs={})


def deployment_of(run: ProgramRun) -> dict[str, Any]:
    """A mock run written the way `pulumi stack export` writes state (for testing the reader above)."""
    return {
        "resources": [
            {
                "urn": resource.urn,
                "custom": bool(resource.id),
                "id": resource.id,
                "type": resource.type,
                "inputs": resource.inputs,
                "outputs": resource.state,
                "parent": resource.parent,
                "protect": resource.options.get("protect", False),
                "dependencies": list(resource.explicit_dependencies),
                "propertyDependencies": {
                    key: list(urns) for key, urns in resource.property_dependencies.items()
                },
                "provider": resource.options.get("provider", ""),
            }
            for resource in run.resources
        ]
    }
