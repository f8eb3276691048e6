"""What the engine proposes for a resource on the next `pulumi up`: its inputs, after `ignoreChanges`.

The engine compares the program's new inputs with the old ones in the state, once it has put the
old value back at every path the resource's `ignoreChanges` names (pulumi/pulumi
`pkg/resource/deploy/step_generator.go` `processIgnoreChanges`, which calls `PropertyPath.Reset`
from `sdk/go/common/resource/properties_path.go`): a path the old inputs have gets the old value,
a path they lack is removed. A path is `key`, `key.sub`, `key[0]` or `key[*]` (every element).
When AWS changed a property behind Pulumi's back and a refresh read it into the state, the update
changes it back unless `ignoreChanges` covers it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

_PART = re.compile(r"([^.\[\]]+)|\[(\d+|\*)\]")
_MISSING = object()


def parse_path(path: str) -> list[str | int]:
    """`a.b[0].c[*]` -> ["a", "b", 0, "c", "*"] (property names and list indexes; `*`: every one)."""
    parts: list[str | int] = []
    for name, index in _PART.findall(path):
        if name:
            parts.append(name)
        else:
            parts.append("*" if index == "*" else int(index))
    return parts


def _get(value: Any, part: str | int) -> Any:
    if isinstance(part, int):
        return value[part] if isinstance(value, list) and part < len(value) else _MISSING
    return value.get(part, _MISSING) if isinstance(value, dict) else _MISSING


def _reset(new: Any, old: Any, parts: list[str | int]) -> None:
    """Puts `old`'s value at `parts` into `new` (in place), or removes it from `new` if `old` has none."""
    part, rest = parts[0], parts[1:]
    if part == "*":
        if isinstance(new, list):
            for index in range(len(new)):
                _reset(new, old, [index, *rest])
        return
    old_value, new_value = _get(old, part), _get(new, part)
    if rest:
        if new_value is not _MISSING:
            _reset(new_value, old_value, rest)
        return
    if old_value is _MISSING:
        if isinstance(new, dict):
            new.pop(str(part), None)
    elif isinstance(new, dict):
        new[str(part)] = copy.deepcopy(old_value)
    elif isinstance(new, list) and isinstance(part, int) and part < len(new):
        new[part] = copy.deepcopy(old_value)


def with_ignored_changes(
    new_inputs: Mapping[str, Any], old_inputs: Mapping[str, Any], ignore_changes: tuple[str, ...]
) -> dict[str, Any]:
    """The new inputs as the engine diffs them: the old value back at every ignored path."""
    ignored = copy.deepcopy(dict(new_inputs))
    for path in ignore_changes:
        _reset(ignored, old_inputs, parse_path(path))
    return ignored


def proposed_changes(
    old_inputs: Mapping[str, Any], new_inputs: Mapping[str, Any], ignore_changes: tuple[str, ...] = ()
) -> list[str]:
    """The top-level inputs the update would change (empty: the engine proposes nothing)."""
    ignored = with_ignored_changes(new_inputs, old_inputs, ignore_changes)
    keys = set(old_inputs) | set(ignored)
    return sorted(key for key in keys if old_inputs.get(key, _MISSING) != ignored.get(key, _MISSING))
