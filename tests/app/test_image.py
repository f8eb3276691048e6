"""The image definition and the local Procfile, checked without a Docker engine."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from app_processes import APP_DIR, REPO_ROOT

from infra import app_contract

DOCKERFILE = APP_DIR / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


def instructions(keyword: str) -> list[str]:
    return [
        line.split(maxsplit=1)[1]
        for line in DOCKERFILE.read_text().splitlines()
        if line.upper().startswith(keyword + " ")
    ]


def test_dockerfile_is_hadolint_clean() -> None:
    result = subprocess.run([str(HADOLINT), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr


def test_image_runs_as_the_contract_non_root_numeric_user() -> None:
    assert instructions("USER")[-1] == app_contract.APP_USER


def test_image_uses_the_python_minor_version_of_the_tests() -> None:
    assert instructions("FROM") == [f"python:{sys.version_info.major}.{sys.version_info.minor}-slim"]


def test_dependencies_are_installed_before_the_code_is_copied() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    install = next(number for number, line in enumerate(lines) if "pip install" in line)
    assert install < lines.index("COPY . ."), "the dependency layer must be cached before the code"
    assert instructions("WORKDIR") == [app_contract.APP_WORKDIR]


def test_procfile_runs_the_contract_commands_from_the_app_directory() -> None:
    roles = {}
    for line in (REPO_ROOT / "Procfile").read_text().splitlines():
        role, command = line.split(":", 1)
        prefix = "cd app && exec "
        assert command.strip().startswith(prefix), f"{role} must exec its command from app/"
        roles[role] = shlex.split(command.strip().removeprefix(prefix))

    assert roles == {
        "web": app_contract.web_command(),
        "worker": app_contract.worker_command("local", app_contract.QUEUES, 2),
        "beat": app_contract.beat_command(),
    }
