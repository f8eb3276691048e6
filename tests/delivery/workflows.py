"""Reading the GitHub Actions files of the repository as data, for the delivery tests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
GITHUB_DIR = REPO_ROOT / ".github"
WORKFLOWS_DIR = GITHUB_DIR / "workflows"
ACTION_FILES = sorted(GITHUB_DIR.glob("actions/*/action.yml"))
PULUMI_ACTION = re.compile(r"^pulumi/actions@[0-9a-f]{40}$")


def workflow_files() -> list[Path]:
    return sorted(WORKFLOWS_DIR.glob("*.yml"))


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def workflow(name: str) -> dict[str, Any]:
    return load(WORKFLOWS_DIR / name)


def triggers(document: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the bare key `on` as the boolean True.
    on = document.get("on", document.get(True))
    return {on: None} if isinstance(on, str) else on


def steps(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every step of every job (or of a composite action)."""
    if "runs" in document:
        return document["runs"]["steps"]
    return [step for job in document["jobs"].values() for step in job.get("steps", [])]


def pulumi_steps(document: dict[str, Any], command: str) -> list[dict[str, Any]]:
    return [
        step
        for step in steps(document)
        if PULUMI_ACTION.match(step.get("uses", "")) and step.get("with", {}).get("command") == command
    ]
