"""The image definition and the local Procfile, checked without a Docker engine."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from dockerkit import lock
from dockerkit.prerequisites import reachable
from infra import app_contract
from testkit.processes import APP_DIR, REPO_ROOT

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


def test_the_default_base_is_the_official_slim_image_of_the_tests_python_pinned_by_digest() -> None:
    official, app = instructions("FROM")
    image, stage = official.split(" AS ")
    assert re.fullmatch(rf"python:{sys.version_info.major}\.{sys.version_info.minor}-slim-bookworm"
                        r"@sha256:[0-9a-f]{64}", image), official
    assert instructions("ARG") == [f"BASE_IMAGE={stage}"], "BASE_IMAGE must default to the pinned stage"
    assert app == "${BASE_IMAGE}"


def test_dependencies_are_installed_from_the_lock_before_the_code_is_copied() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    install = next(number for number, line in enumerate(lines) if "pip install" in line)
    assert lines.index("COPY requirements.lock .") < install < lines.index("COPY . ."), (
        "the dependency layer must come from the lock alone and be cached before the code"
    )
    assert "--require-hashes -r requirements.lock" in lines[install]
    assert instructions("WORKDIR") == [app_contract.APP_WORKDIR]


def test_the_lock_pins_the_versions_the_suite_is_tested_with() -> None:
    """app/requirements.lock and constraints.txt agree (scripts/lock-app regenerates the lock)."""
    tested = {pin.key: pin.version for pin in lock.parse_pins(lock.CONSTRAINTS.read_text())}
    locked = lock.parse_pins(lock.LOCK.read_text())

    # A pin whose marker is false here (another interpreter of the image needs it) is not installed
    # in the suite, so constraints.txt cannot list it.
    differ = {pin.key: (pin.version, tested.get(pin.key)) for pin in locked
              if pin.applies_here() and tested.get(pin.key) != pin.version}
    assert not differ, f"locked vs tested versions differ, run scripts/lock-app: {differ}"
    assert all(pin.hashes for pin in locked), "every locked package needs its wheel hashes"


def test_the_lock_satisfies_every_app_requirement() -> None:
    locked = {pin.key: pin.version for pin in lock.parse_pins(lock.LOCK.read_text())}

    for requirement in lock.app_requirements():
        key = canonicalize_name(requirement.name)
        assert key in locked, f"{requirement.name} is not locked; run scripts/lock-app"
        assert requirement.specifier.contains(locked[key]), (
            f"the lock has {requirement.name}=={locked[key]}, outside {requirement}; run scripts/lock-app"
        )


def test_the_lock_is_what_its_inputs_give_today() -> None:
    """scripts/lock-app --check resolves app/requirements.txt within constraints.txt again (uv, PyPI) and
    compares packages, versions and markers with the lock: a requirement added, removed or re-bounded
    without relocking fails here, and so does a package with no wheel for one of the image's platforms."""
    if not reachable(f"{lock.INDEX_URL}/pip/"):
        pytest.skip(f"PyPI does not answer ({lock.INDEX_URL}): the lock cannot be resolved again")

    result = subprocess.run(
        [str(REPO_ROOT / "scripts" / "lock-app"), "--check"], capture_output=True, text=True, timeout=300
    )

    assert result.returncode == 0, result.stdout + result.stderr


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
