"""scripts/deploy refuses to start without what `pulumi up` needs, before it installs anything."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.delivery.workflows import REPO_ROOT

DEPLOY = REPO_ROOT / "scripts" / "deploy"


def fake_command(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


def run_deploy(bin_dir: Path) -> subprocess.CompletedProcess[str]:
    # Only what the script's checks need, so a Docker installed on this machine stays out of view.
    for tool in ("bash", "dirname"):
        found = shutil.which(tool)
        assert found, f"{tool} is needed to run scripts/deploy"
        (bin_dir / tool).symlink_to(found)
    environment = {**os.environ, "PATH": str(bin_dir)}
    return subprocess.run(
        [str(DEPLOY), "dev"], env=environment, capture_output=True, text=True, timeout=60, check=False
    )


def test_a_docker_cli_without_a_daemon_stops_the_deploy_with_a_clear_message(tmp_path: Path) -> None:
    fake_command(tmp_path, "pulumi", "exit 0")
    # `docker info` fails the way the real CLI does when no daemon answers.
    fake_command(
        tmp_path,
        "docker",
        'if [ "$1" = info ]; then echo "Cannot connect to the Docker daemon" >&2; exit 1; fi; exit 0',
    )
    deploy = run_deploy(tmp_path)
    assert deploy.returncode == 1, deploy.stderr
    assert "Docker daemon does not answer" in deploy.stderr, deploy.stderr
    assert "docker info" in deploy.stderr, "the message names the check that failed"


def test_no_docker_at_all_is_named(tmp_path: Path) -> None:
    fake_command(tmp_path, "pulumi", "exit 0")
    deploy = run_deploy(tmp_path)
    assert deploy.returncode == 1
    assert "Docker is required" in deploy.stderr, deploy.stderr
