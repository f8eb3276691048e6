"""`locked_migrate` (the migrate role): concurrent runs serialize instead of racing."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from app_processes import APP_DIR, AppProcess, container_env, django_database_url

from infra import app_contract


@pytest.fixture
def empty_database() -> Iterator[str]:
    """A new, empty database on the test server; dropped afterwards."""
    from django.db import connection

    name = f"migrate_{uuid.uuid4().hex[:12]}"
    admin_url = django_database_url({**connection.settings_dict, "NAME": "postgres"})
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield django_database_url({**connection.settings_dict, "NAME": name})
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_two_concurrent_migrate_runs_both_succeed(empty_database: str, redis_url: str) -> None:
    env = container_env(empty_database, redis_url)

    runs = [AppProcess(f"migrate-{n}", app_contract.migrate_command(), env) for n in (1, 2)]
    exit_codes = [run.wait_exit(timeout=120) for run in runs]
    for run in runs:
        run.stop()

    assert exit_codes == [0, 0], "\n\n".join(run.describe() for run in runs)
    check = subprocess.run(
        ["python", "manage.py", "migrate", "--check"], cwd=APP_DIR, env=env, capture_output=True, timeout=60
    )
    assert check.returncode == 0, "migrations left unapplied: " + check.stdout.decode()
