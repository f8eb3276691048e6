"""The shape a new maintainer can read top to bottom: no function longer than a screen.

ruff (complexity, branches, arguments) and mypy (strict types) run in scripts/test; this adds the
one limit neither has. Declarative tables (a list of alarm or widget declarations) may be longer:
splitting them would scatter one definition over several places.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("infra", "bench", "testkit", "bootstrap", "app")
MAX_FUNCTION_LINES = 60
DECLARATIVE_TABLES = {
    ("infra/observability/alarms.py", "alarm_rules"),
    ("infra/observability/dashboard.py", "dashboard_body"),
}


def functions(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        (node.name, (node.end_lineno or node.lineno) - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


def source_files() -> list[Path]:
    return sorted(
        path
        for folder in CHECKED
        for path in (ROOT / folder).rglob("*.py")
        if "migrations" not in path.parts and ".venv" not in path.parts
    )


def test_no_function_is_longer_than_a_screen() -> None:
    long = [
        f"{path.relative_to(ROOT)}:{name} ({lines} lines)"
        for path in source_files()
        for name, lines in functions(path)
        if lines > MAX_FUNCTION_LINES and (path.relative_to(ROOT).as_posix(), name) not in DECLARATIVE_TABLES
    ]
    assert long == [], f"split these into named helpers (limit {MAX_FUNCTION_LINES} lines): {long}"


@pytest.mark.parametrize("table", sorted(DECLARATIVE_TABLES))
def test_every_exempt_table_still_exists(table: tuple[str, str]) -> None:
    path, name = table
    assert name in dict(functions(ROOT / path)), f"{path}:{name} is gone; drop it from DECLARATIVE_TABLES"
