"""The release gate: every refusal, from the rules alone and from the real app's own report.

The rules (compatibility.py) are checked on hand-made states; then the app's
`manage.py release_state` runs as a real process against a real PostgreSQL and Redis, on the real
migration graph (and on a copy of the app with migrations added), and its report goes through the
same rules; finally the provider refuses before any migration runs, or lets a forced release
through and records what it overrode (ECS scripted with botocore's Stubber, logs in moto).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import boto3
import psycopg
import pytest
import redis
from moto import mock_aws

from infra.release.compatibility import (
    ReleaseState,
    ReleaseStateError,
    new_migrations,
    pull_request_problems,
    release_problems,
)
from infra.release.provider import MigrationProvider, ReleaseRefusedError
from infra.release.runner import ReleaseCheckError
from tests.infra.release.test_release_provider import (
    LOG_GROUP,
    QUIET_STATE,
    REGION,
    RELEASE_INPUTS,
    ScriptedEcs,
    provider_on,
    state_lines,
)

APP_DIR = Path(__file__).resolve().parents[3] / "app"
EMAIL = "signups.tasks.send_welcome_email"
HEARTBEAT = "signups.tasks.record_heartbeat"


def state(**changes: Any) -> ReleaseState:
    return ReleaseState.from_dict({**QUIET_STATE, **changes})


def messages(problems: list[Any]) -> str:
    return "\n".join(str(problem) for problem in problems)


# --- the rules ----------------------------------------------------------------------------------


def test_a_quiet_broker_and_a_known_schema_release() -> None:
    assert release_problems(state(), ["default", "email"]) == []


@pytest.mark.parametrize(
    ("live", "named"),
    [
        (
            {"queues": {"email": {"signups.tasks.old_digest": 3}}},
            "3 message(s) for task signups.tasks.old_digest",
        ),
        ({"unacked": {"signups.tasks.old_digest": 2}}, "2 unacknowledged or delayed (countdown/ETA)"),
        ({"beat_entries": {"nightly": "signups.tasks.old_digest"}}, "Beat entry nightly schedules task"),
    ],
    ids=["waiting", "delayed", "scheduled"],
)
def test_messages_for_a_task_the_image_dropped_refuse_the_release(live: dict[str, Any], named: str) -> None:
    problems = release_problems(
        state(live={"queues": {}, "unacked": {}, "beat_entries": {}, **live}), ["default", "email"]
    )
    assert [problem.kind for problem in problems] == ["tasks"]
    assert named in str(problems[0]) and "signups.tasks.old_digest" in str(problems[0])


def test_a_beat_entry_for_an_unregistered_task_refuses() -> None:
    problems = release_problems(
        state(beat={"digest": {"task": "signups.tasks.gone", "queue": "default"}}), ["default", "email"]
    )
    assert "Beat schedule entry digest names task signups.tasks.gone" in messages(problems)


def test_queues_without_a_consuming_pool_refuse_with_their_names() -> None:
    waiting = {"queues": {"reports": {EMAIL: 5}}, "unacked": {}, "beat_entries": {}}
    problems = release_problems(state(live=waiting), ["default"])
    text = messages(problems)
    assert f"queue email receives {EMAIL} and no worker pool consumes it" in text
    assert "queue reports holds 5 message(s) and no worker pool consumes it" in text


def test_remote_control_replies_are_not_queues() -> None:
    replies = {"queues": {"3f2a.reply.celery.pidbox": {"?": 1}}, "unacked": {}, "beat_entries": {}}
    assert release_problems(state(live=replies), ["default", "email"]) == []


def test_migrations_the_image_lacks_refuse_the_release_and_are_named() -> None:
    problems = release_problems(
        state(applied=["signups.0001_initial", "signups.0002_email_verified", "signups.0003_drop_attempts"]),
        ["default", "email"],
    )
    assert [problem.kind for problem in problems] == ["migrations"]
    assert "signups.0002_email_verified, signups.0003_drop_attempts" in str(problems[0])


def test_a_pull_request_may_not_drop_a_task_the_running_image_registers() -> None:
    previous = state(tasks=[EMAIL, "signups.tasks.old_digest"])
    problems = pull_request_problems(previous, state(), ["default", "email"])
    assert "signups.tasks.old_digest" in messages(problems) and "RELEASE_RETIRED_TASKS" in messages(problems)
    assert (
        pull_request_problems(previous, state(retired=["signups.tasks.old_digest"]), ["default", "email"])
        == []
    )


def test_only_migrations_new_since_the_last_release_are_judged() -> None:
    previous = state()
    new = state(
        migrations=["signups.0001_initial", "signups.0002_drop", "signups.0003_contract"],
        contract=["signups.0003_contract"],
        lint={
            "signups.0002_drop": ["DROPPING columns (table: signups_signup, column: attempts)"],
            "signups.0003_contract": ["DROPPING columns (table: signups_signup, column: last_error)"],
        },
    )
    assert new_migrations(previous, new) == ["signups.0002_drop", "signups.0003_contract"]
    problems = pull_request_problems(previous, new, ["default", "email"])
    assert [problem.kind for problem in problems] == ["migrations"]
    assert "signups.0002_drop is not backward compatible (DROPPING columns" in str(problems[0])


def test_a_report_split_over_several_log_lines_is_reassembled_and_a_missing_part_refused() -> None:
    lines = state_lines(QUIET_STATE, part_chars=40)
    assert len(lines) > 3
    assert ReleaseState.from_lines(["noise", *lines, "more noise"]) == state()
    with pytest.raises(ReleaseStateError, match="found"):
        ReleaseState.from_lines(lines[:-1])


# --- the real app reports; the rules decide -----------------------------------------------------


@pytest.fixture
def empty_database(database_url: str) -> Iterator[str]:
    parts = urlsplit(database_url)
    name = f"release_{uuid.uuid4().hex[:12]}"
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield urlunsplit(parts._replace(path=f"/{name}"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def broker(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()


def manage(app_dir: Path, database_url: str, redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "DJANGO_SECRET_KEY": "release-gate-test",
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=app_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def reported(app_dir: Path, database_url: str, redis_url: str, *flags: str) -> ReleaseState:
    done = manage(app_dir, database_url, redis_url, "release_state", *flags)
    assert done.returncode == 0, done.stderr
    return ReleaseState.from_lines(done.stdout.splitlines())


def test_the_app_reports_its_tasks_routes_beat_and_migrations(empty_database: str, redis_url: str) -> None:
    report = reported(APP_DIR, empty_database, redis_url)
    assert {EMAIL, HEARTBEAT} <= set(report.tasks)
    assert report.routes[EMAIL] == "email" and report.routes[HEARTBEAT] == "default"
    # The heartbeat runs every PERIODIC_HEARTBEAT_SECONDS (60 by default) under its declared policy.
    assert report.beat["record-heartbeat"] == {
        "task": HEARTBEAT,
        "queue": "default",
        "schedule": "every 60 s",
        "period_seconds": 60.0,
        "policy": {"catch_up": "once", "overlap": "skip", "deadline_seconds": None},
    }
    assert "signups.0001_initial" in report.migrations and "auth.0001_initial" in report.migrations
    assert release_problems(report, ["default", "email"]) == []
    assert "queue email receives" in messages(release_problems(report, ["default"]))


def applied_in(database_url: str) -> set[str]:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute("SELECT app || '.' || name FROM django_migrations").fetchall()
    return {row[0] for row in rows}


def test_an_empty_database_is_migrated_after_the_report(empty_database: str, redis_url: str) -> None:
    """A stack's first release: one task reports (nothing applied yet) and then migrates."""
    report = reported(APP_DIR, empty_database, redis_url, "--applied", "--live", "--migrate-if-empty")
    assert report.applied == (), "the report is taken before migrating: the database was empty"
    assert applied_in(empty_database) == set(report.migrations), "every migration of the image is applied"


def test_a_database_with_migrations_waits_for_the_gate(empty_database: str, redis_url: str) -> None:
    """Anything applied means a version may run on it: the report only, migrations after the gate."""
    done = manage(APP_DIR, empty_database, redis_url, "migrate", "signups", "0001", "--noinput")
    assert done.returncode == 0, done.stderr
    before = applied_in(empty_database)
    report = reported(APP_DIR, empty_database, redis_url, "--applied", "--live", "--migrate-if-empty")
    assert set(report.applied or ()) == before and applied_in(empty_database) == before, (
        "a database with applied migrations must not be migrated by the check"
    )
    assert set(report.migrations) - before, "the image must have migrations left to apply"


def test_a_database_ahead_of_the_image_refuses_naming_its_migrations(
    empty_database: str, redis_url: str, broker: redis.Redis
) -> None:
    assert manage(APP_DIR, empty_database, redis_url, "migrate", "--noinput").returncode == 0
    with psycopg.connect(empty_database, autocommit=True) as connection:  # a newer release migrated
        connection.execute(
            "INSERT INTO django_migrations (app, name, applied) "
            "VALUES ('signups', '0002_email_verified', now())"
        )
    report = reported(APP_DIR, empty_database, redis_url, "--applied", "--live")
    problems = release_problems(report, ["default", "email"])
    assert [problem.kind for problem in problems] == ["migrations"]
    assert "signups.0002_email_verified" in str(problems[0])


def test_live_messages_for_a_dropped_task_refuse_naming_task_and_queue(
    empty_database: str, redis_url: str, broker: redis.Redis
) -> None:
    message = {"body": "", "headers": {"task": "signups.tasks.old_digest", "id": "1"}, "properties": {}}
    broker.lpush("email", json.dumps(message))
    broker.lpush("reports", json.dumps({**message, "headers": {"task": EMAIL, "id": "2"}}))
    broker.hset(
        "unacked", "tag-1", json.dumps([{**message, "headers": {"task": "signups.tasks.gone"}}, "", "email"])
    )

    report = reported(APP_DIR, empty_database, redis_url, "--applied", "--live")
    text = messages(release_problems(report, ["default", "email"]))

    assert "1 message(s) for task signups.tasks.old_digest, which this image does not register" in text
    assert "wait in queue email" in text
    assert "unacknowledged or delayed (countdown/ETA) message(s) for task signups.tasks.gone" in text
    assert "queue reports holds 1 message(s) and no worker pool consumes it" in text


DROP_COLUMN = """
from django.db import migrations


class Migration(migrations.Migration):
    {marker}
    dependencies = [("signups", "{previous}")]
    operations = [migrations.RemoveField(model_name="signup", name="{field}")]
"""


@pytest.fixture
def app_with_new_migrations(tmp_path: Path) -> Path:
    """A copy of the app whose next release drops two columns, the second marked as a contract step."""
    copy = tmp_path / "app"
    shutil.copytree(APP_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "staticfiles"))
    migrations = copy / "signups" / "migrations"
    (migrations / "0002_drop_attempts.py").write_text(
        textwrap.dedent(DROP_COLUMN.format(marker="", previous="0001_initial", field="attempts"))
    )
    (migrations / "0003_drop_last_error.py").write_text(
        textwrap.dedent(
            DROP_COLUMN.format(marker="contract = True", previous="0002_drop_attempts", field="last_error")
        )
    )
    return copy


def test_the_linter_fails_a_drop_column_unless_it_is_the_contract_step(
    app_with_new_migrations: Path, empty_database: str, redis_url: str
) -> None:
    previous = reported(APP_DIR, empty_database, redis_url)
    new = reported(app_with_new_migrations, empty_database, redis_url)
    added = new_migrations(previous, new)
    assert added == ["signups.0002_drop_attempts", "signups.0003_drop_last_error"]
    assert new.contract == ("signups.0003_drop_last_error",)

    linted = reported(app_with_new_migrations, empty_database, redis_url, "--lint", *added)
    problems = pull_request_problems(previous, linted, ["default", "email"])

    assert [problem.kind for problem in problems] == ["migrations"]
    assert "signups.0002_drop_attempts is not backward compatible" in str(problems[0])
    assert "attempts" in str(problems[0])


# --- the provider: refused before any migration, or forced and recorded -------------------------


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ScriptedEcs, Any]]:
    """ECS scripted call by call (every call must be expected), CloudWatch Logs in moto."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        logs = boto3.client("logs", region_name=REGION)
        logs.create_log_group(logGroupName=LOG_GROUP)
        ecs = ScriptedEcs()
        with ecs.stubber:
            yield ecs, logs
            ecs.stubber.assert_no_pending_responses()


def test_a_refused_release_runs_no_migration(cloud: tuple[ScriptedEcs, Any]) -> None:
    ecs, logs = cloud
    ecs.check_task_reports(logs, {**QUIET_STATE, "applied": [*QUIET_STATE["applied"], "signups.0002_newer"]})
    # No migrate RunTask is scripted: the Stubber fails the test if the provider starts one.
    with pytest.raises(ReleaseRefusedError, match=r"signups\.0002_newer") as refused:
        provider_on(ecs, logs).create(dict(RELEASE_INPUTS))
    assert "No service was updated" in str(refused.value) and "releaseForce=true" in str(refused.value)


def test_a_forced_release_migrates_and_records_what_it_overrode(cloud: tuple[ScriptedEcs, Any]) -> None:
    ecs, logs = cloud
    ecs.check_task_reports(logs, {**QUIET_STATE, "applied": [*QUIET_STATE["applied"], "signups.0002_newer"]})
    ecs.run_task_starts()
    ecs.task_exits(0)
    outs = provider_on(ecs, logs).create({**RELEASE_INPUTS, "force": True}).outs or {}
    assert outs["exit_code"] == 0
    assert [problem for problem in outs["overridden"] if "signups.0002_newer" in problem]


def test_an_image_that_cannot_report_is_refused_unless_forced(cloud: tuple[ScriptedEcs, Any]) -> None:
    ecs, logs = cloud
    ecs.check_task_reports(logs, {}, exit_code=1)
    with pytest.raises(ReleaseCheckError, match=r"exit code 1.*releaseForce"):
        provider_on(ecs, logs).create(dict(RELEASE_INPUTS))


def test_an_image_that_cannot_report_is_released_when_forced(cloud: tuple[ScriptedEcs, Any]) -> None:
    ecs, logs = cloud
    ecs.check_task_reports(logs, {}, exit_code=1)
    ecs.run_task_starts()
    ecs.task_exits(0)
    outs = provider_on(ecs, logs).create({**RELEASE_INPUTS, "force": True}).outs or {}
    assert outs["tasks"] is None and "Release check failed" in outs["overridden"][0]


def test_force_alone_does_not_start_a_release() -> None:
    olds = {**RELEASE_INPUTS, "task_arn": "arn", "exit_code": 0}
    assert MigrationProvider().diff("id", olds, {**RELEASE_INPUTS, "force": True}).changes is False
