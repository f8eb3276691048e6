"""`locked_migrate` (the migrate role): concurrent runs serialize instead of racing."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from infra import app_contract
from testkit.processes import APP_DIR, AppProcess, container_env, django_database_url


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


def test_the_mailbox_migration_keeps_old_rows_and_gives_each_mailbox_one_identity(
    empty_database: str, redis_url: str
) -> None:
    """Expand step on data the previous release wrote: both spellings of one IDN mailbox (which it
    let in twice) stay, the older one carries the identity, and the previous release's insert
    (without the new columns) still works afterwards."""
    env = container_env(empty_database, redis_url)
    migrate_to = [sys.executable, "manage.py", "migrate", "--noinput", "signups"]
    before = subprocess.run([*migrate_to, "0001"], cwd=APP_DIR, env=env, capture_output=True, timeout=120)
    assert before.returncode == 0, before.stderr.decode()
    legacy_insert = (
        "INSERT INTO signups_signup (id, email, status, attempts, last_error, created_at, updated_at) "
        "VALUES (%s, %s, 'sent', 1, '', now() - %s * interval '1 minute', now())"
    )
    older, newer, odd = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(empty_database, autocommit=True) as db:
        db.execute(legacy_insert, (older, "ada@bücher.de", 3))
        db.execute(legacy_insert, (newer, "ada@xn--bcher-kva.de", 2))
        db.execute(legacy_insert, (odd, "not an address", 1))

    after = AppProcess("migrate", app_contract.migrate_command(), env)
    assert after.wait_exit(timeout=120) == 0, after.describe()
    after.stop()

    with psycopg.connect(empty_database, autocommit=True) as db:
        rows = dict(db.execute("SELECT id, email_canonical FROM signups_signup").fetchall())
        db.execute(legacy_insert, (uuid.uuid4(), "grace@example.com", 0))  # the previous release, mid-rollout
    assert rows == {older: "ada@xn--bcher-kva.de", newer: None, odd: None}
