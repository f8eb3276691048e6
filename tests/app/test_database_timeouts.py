"""App connections wait a bounded time for locks and statements; the API answers 503 on them.

A migration (or any long transaction) holding a lock used to make every signup wait for the whole
lock. The migrate role sets its own bounds (locked_migrate: no statement bound, its lock_timeout).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import psycopg
import pytest
from django.db import connection
from django.test import Client

from core.management.commands.locked_migrate import MIGRATION_LOCK_ID
from infra import app_contract
from testkit.processes import AppProcess, container_env, wait_for


@pytest.fixture
def locked_signups(test_database_url: str) -> Iterator[None]:
    """Another session holds the lock an ALTER TABLE takes, as a migration does."""
    with psycopg.connect(test_database_url) as other:
        other.execute("LOCK TABLE signups_signup IN ACCESS EXCLUSIVE MODE")
        yield
        other.rollback()


@pytest.mark.django_db(transaction=True)
def test_app_connections_bound_lock_waits_and_statements(settings) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        lock_timeout = cursor.fetchone()[0]
        cursor.execute("SHOW statement_timeout")
        statement_timeout = cursor.fetchone()[0]
    assert (lock_timeout, statement_timeout) == ("2s", "20s")


@pytest.mark.django_db(transaction=True)
def test_a_signup_behind_a_held_lock_gets_503_with_retry_after_in_bounded_time(locked_signups) -> None:
    started = time.monotonic()
    body = json.dumps({"email": "ada@example.com"})
    response = Client().post("/api/signups", data=body, content_type="application/json")
    elapsed = time.monotonic() - started

    assert response.status_code == 503, response.content
    assert response["Retry-After"] == "10"
    assert "unavailable" in response.json()["error"]
    assert elapsed < 5, f"waited {elapsed:.1f} s for the lock"


@pytest.mark.django_db(transaction=True)
def test_the_migrate_role_waits_for_another_run_longer_than_the_app_may_wait(
    test_database_url: str, redis_url: str
) -> None:
    """Another release's migrate run holds the migration lock for longer than the app's
    lock_timeout; this run waits for it instead of failing."""
    env = container_env(test_database_url, redis_url)
    with psycopg.connect(test_database_url, autocommit=True) as other_run:
        other_run.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_ID])
        run = AppProcess("migrate", app_contract.migrate_command(), env)
        wait_for(lambda: "waiting for the migration lock" in run.output(), 60, "migrate did not start")
        time.sleep(3)  # the lock is held past the app's 2 s lock_timeout: the point of the test
        other_run.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_ID])
    assert run.wait_exit(timeout=120) == 0, run.describe()
    run.stop()
