"""The shape of the program's import graph: a maintainer can read it bottom up.

- The config reader is at the bottom: it imports nothing of the program, so every concern's config
  part can use it without reaching upward.
- The stack config (`infra/stack.py`, which composes every part) is at the top: only the wiring and
  the commands that check a stack's files import it; components receive the parts they read.
- No import cycle between modules, nor between the concern folders and the shared modules (a cycle
  between folders means a concept without one home).
- No module over 500 lines.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

INFRA = Path(__file__).resolve().parents[2] / "infra"
MAX_MODULE_LINES = 500
# Who may see the whole stack config: the program's entry point, the full stack's wiring and the
# release check of a stack file (the preview wirings get the parts they read).
STACK_CONFIG_READERS = {"infra.__main__", "infra.full_stack", "infra.ops.release_check"}


def module_name(path: Path) -> str:
    parts = path.relative_to(INFRA.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in INFRA.rglob("*.py")}


def imports(path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The program's modules `path` imports (`from infra.x import y` names infra.x.y when y is one)."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("infra"):
                yield node.module
                yield from (
                    f"{node.module}.{alias.name}"
                    for alias in node.names
                    if f"{node.module}.{alias.name}" in known
                )
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.startswith("infra"))


def module_graph() -> dict[str, set[str]]:
    known = modules()
    return {
        name: {target for target in imports(path, known) if target in known and target not in {name, "infra"}}
        for name, path in known.items()
    }


def unit(module: str) -> str:
    """A concern folder (`infra.web`) or a shared top-level module (`infra.naming`)."""
    return ".".join(module.split(".")[:2])


def unit_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, targets in module_graph().items():
        graph[unit(module)] |= {unit(target) for target in targets if unit(target) != unit(module)}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a path that starts and ends at the same node, or None."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target] if target in path else [node, target]
            if target not in state and (found := visit(target, [*path, target])):
                return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_the_find_cycle_check_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_imports_itself_in_a_circle() -> None:
    cycle = find_cycle(module_graph())
    assert cycle is None, f"import cycle: {' -> '.join(cycle or [])}"


def test_the_concern_folders_and_shared_modules_form_no_cycle() -> None:
    cycle = find_cycle(unit_graph())
    assert cycle is None, (
        f"folders import each other in a circle ({' -> '.join(cycle or [])}): give the concept they "
        "share one home, below both"
    )


def test_the_config_reader_is_at_the_bottom() -> None:
    reader_imports = {
        target
        for module, targets in module_graph().items()
        if unit(module) == "infra.config"
        for target in targets
    }
    assert reader_imports == set(), (
        f"infra/config imports {reader_imports}; it must import nothing of the program"
    )


def test_only_the_wiring_sees_the_whole_stack_config() -> None:
    readers = {module for module, targets in module_graph().items() if "infra.stack" in targets}
    assert readers <= STACK_CONFIG_READERS, (
        f"{sorted(readers - STACK_CONFIG_READERS)} import infra.stack: pass the config parts a component "
        "reads through its args instead"
    )


@pytest.mark.parametrize("module", sorted(modules()))
def test_no_module_is_longer_than_five_hundred_lines(module: str) -> None:
    lines = len(modules()[module].read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{module} has {lines} lines: split it by what its parts are about"
