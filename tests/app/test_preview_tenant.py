"""`manage.py preview_tenant`: previews' databases, roles and Redis keys on one real PostgreSQL server and
one real Redis, as the preview's one-off tenant task and the janitor run it."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import boto3
import psycopg
import pytest
import redis
from django.core.management import CommandError, call_command
from moto import mock_aws

from core import preview_tenant
from testkit.processes import APP_DIR

# High numbers: no real pull request of a test run's server has them.
ONE, TWO, THREE = 9001, 9002, 9003


def server_url(database_url: str, user: str = "postgres", password: str = "", database: str = "postgres"):
    """A URL of the test server for another user and database."""
    url = urlsplit(database_url)
    credentials = f"{user}:{password}" if password else user
    location = f"{credentials}@{url.hostname}:{url.port or 5432}"
    return urlunsplit((url.scheme, location, f"/{database}", "", ""))


@pytest.fixture
def admin(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(server_url(database_url), autocommit=True) as connection:
        yield connection
        for number in (ONE, TWO, THREE):
            connection.execute(f"DROP DATABASE IF EXISTS pr_{number} WITH (FORCE)")
            connection.execute(f"DROP ROLE IF EXISTS pr_{number}")


@pytest.fixture
def broker(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    for number in (ONE, TWO, THREE):
        for key in client.scan_iter(match=f"pr-{number}:*"):
            client.unlink(key)
    client.close()


@pytest.fixture
def tenant(monkeypatch: pytest.MonkeyPatch, settings, database_url: str, admin):
    """Run the command as preview N's one-off task would: its DATABASE_URL and key prefix."""

    def run(number: int, *arguments: str) -> None:
        monkeypatch.setenv("ADMIN_DATABASE_URL", server_url(database_url))
        monkeypatch.setenv("DATABASE_URL", server_url(database_url, f"pr_{number}", "pw", f"pr_{number}"))
        settings.REDIS_KEY_PREFIX = f"pr-{number}:"
        call_command("preview_tenant", *arguments)

    return run


def databases(admin: psycopg.Connection) -> set[str]:
    rows = admin.execute("SELECT datname FROM pg_database WHERE datname IN ('pr_9001', 'pr_9002', 'pr_9003')")
    return {name for (name,) in rows}


def roles(admin: psycopg.Connection) -> set[str]:
    rows = admin.execute("SELECT rolname FROM pg_roles WHERE rolname IN ('pr_9001', 'pr_9002', 'pr_9003')")
    return {name for (name,) in rows}


def can_connect(database_url: str, role: str, database: str) -> bool:
    try:
        with psycopg.connect(server_url(database_url, role, "pw", database), connect_timeout=5):
            return True
    except psycopg.OperationalError as error:
        assert "permission denied" in str(error), error
        return False


def test_each_preview_gets_its_own_role_and_database_closed_to_others(tenant, admin, database_url) -> None:
    tenant(ONE, "create", "--connection-limit", "4")
    tenant(TWO, "create", "--connection-limit", "4")

    limits = dict(admin.execute("SELECT rolname, rolconnlimit FROM pg_roles WHERE rolname LIKE 'pr_900_'"))
    owners = dict(
        admin.execute("SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname LIKE 'pr_900_'")
    )
    public = admin.execute("SELECT has_database_privilege('public', 'pr_9001', 'CONNECT')").fetchone()
    assert limits == {"pr_9001": 4, "pr_9002": 4}
    assert owners == {"pr_9001": "pr_9001", "pr_9002": "pr_9002"}
    assert public == (False,)
    assert can_connect(database_url, "pr_9001", "pr_9001")
    assert not can_connect(database_url, "pr_9001", "pr_9002")
    assert not can_connect(database_url, "pr_9002", "pr_9001")


def test_create_again_converges_on_the_new_limit(tenant, admin) -> None:
    tenant(ONE, "create", "--connection-limit", "4")
    tenant(ONE, "create", "--connection-limit", "6")

    assert admin.execute("SELECT rolconnlimit FROM pg_roles WHERE rolname = 'pr_9001'").fetchone() == (6,)


def test_drop_removes_database_role_and_keys_and_leaves_the_other_preview(tenant, admin, broker) -> None:
    tenant(ONE, "create", "--connection-limit", "4")
    tenant(TWO, "create", "--connection-limit", "4")
    for number in (ONE, TWO):
        broker.mset({f"pr-{number}:key-{n}": n for n in range(1200)})  # more than one SCAN batch
    broker.set("pr-90010:not-this-preview", 1)

    tenant(ONE, "drop")
    tenant(ONE, "drop")  # a second drop succeeds: nothing left to drop

    assert databases(admin) == roles(admin) == {"pr_9002"}
    assert list(broker.scan_iter(match="pr-9001:*")) == []
    assert len(list(broker.scan_iter(match="pr-9002:*", count=1000))) == 1200
    assert broker.unlink("pr-90010:not-this-preview") == 1


def test_orphans_lists_and_removes_previews_without_a_kept_stack(tenant, admin, broker, capsys) -> None:
    # Previews of other runs on this server are kept too: only this test's are orphans.
    names = admin.execute("SELECT datname FROM pg_database UNION SELECT rolname FROM pg_roles").fetchall()
    kept = {name.replace("_", "-") for (name,) in names if name.startswith("pr_")} | {"pr-9001"}
    keep = ",".join(sorted(kept))
    tenant(ONE, "create", "--connection-limit", "2")
    tenant(TWO, "create", "--connection-limit", "2")
    broker.set("pr-9003:stray", 1)
    capsys.readouterr()

    tenant(ONE, "orphans", "--keep", keep)
    listed = capsys.readouterr().out
    tenant(ONE, "orphans", "--keep", keep, "--remove")

    assert "orphan pr-9002: database pr_9002, role pr_9002" in listed
    assert "orphan pr-9003: 1 Redis keys under pr-9003:" in listed
    assert "pr-9001" not in listed
    assert roles(admin) == {"pr_9001"}
    assert not broker.exists("pr-9003:stray")


@pytest.mark.parametrize(
    ("database", "prefix", "arguments", "reason"),
    [
        ("h_base", "pr-9001:", ["drop"], "user and database must both be pr_<N>"),
        ("pr_9001", "pr-9002:", ["drop"], "REDIS_KEY_PREFIX must be pr-<N>: for the same N"),
        ("pr_9001", "pr-9001:", ["create", "--connection-limit", "0"], "--connection-limit must be at least"),
    ],
)
def test_a_refused_request_names_its_reason(
    tenant, settings, monkeypatch, database: str, prefix: str, arguments: list[str], reason: str
) -> None:
    tenant(ONE, "drop")
    monkeypatch.setenv("DATABASE_URL", f"postgres://pr_9001:pw@127.0.0.1:5432/{database}")
    settings.REDIS_KEY_PREFIX = prefix

    with pytest.raises(CommandError, match=re.escape(reason)):
        call_command("preview_tenant", *arguments)


def test_the_task_exits_non_zero_with_one_line_on_stderr(database_url: str, redis_url: str) -> None:
    environment = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": "x" * 50,
        "DATABASE_URL": server_url(database_url, "pr_9001", "pw", "pr_9001"),
        "ADMIN_DATABASE_URL": server_url(database_url, database="no_such_database_papp"),
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": "pr-9001:",
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "preview_tenant", "create", "--connection-limit", "2"],
        cwd=APP_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 1, done
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert done.stderr.startswith("CommandError: preview_tenant create:"), done.stderr
    assert "no_such_database_papp" in done.stderr


# --- The preview's DATABASE_URL from Secrets Manager (the base's tenant task) ---------------------

SECRET_REGION = "eu-west-1"


@pytest.mark.parametrize(
    ("arn", "region"),
    [
        # Secrets Manager user guide, "Permissions reference": arn:${Partition}:secretsmanager:
        # ${Region}:${Account}:secret:${SecretId}, the id ending in a hyphen and 6 random characters.
        ("arn:aws:secretsmanager:eu-west-1:123456789012:secret:djcelery-pr-42-db-a1B2c3", "eu-west-1"),
        (
            "arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:app/db_url-Zz9Yy8",
            "us-gov-west-1",
        ),
    ],
)
def test_the_secret_region_comes_from_its_arn(arn: str, region: str) -> None:
    assert preview_tenant.secret_region(arn) == region


@pytest.mark.parametrize(
    "arn",
    [
        "djcelery-pr-42-database-url",  # a name, not an ARN
        "arn:aws:ssm:eu-west-1:123456789012:parameter/x",  # another service
        "arn:aws:secretsmanager:eu-west-1:1234:secret:x-a1B2c3",  # not a 12-digit account
    ],
)
def test_anything_but_a_secret_arn_is_refused(arn: str) -> None:
    with pytest.raises(preview_tenant.TenantError, match="--database-url-secret takes a Secrets Manager"):
        preview_tenant.secret_region(arn)


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # not the secret's: the ARN's region is used
    with mock_aws():
        yield boto3.client("secretsmanager", region_name=SECRET_REGION)


@pytest.fixture
def base_task(monkeypatch: pytest.MonkeyPatch, settings, database_url: str, admin, secrets):
    """Run the command as the base's tenant task does: DATABASE_URL is the base's own (the admin
    URL), the preview's comes from its secret, the prefix from the environment override."""

    def run(number: int, secret_value: str, *arguments: str) -> str:
        name = f"djcelery-pr-{number}-database-url"
        try:
            arn = secrets.create_secret(Name=name, SecretString=secret_value)["ARN"]
        except secrets.exceptions.ResourceExistsException:
            arn = secrets.put_secret_value(SecretId=name, SecretString=secret_value)["ARN"]
        monkeypatch.setenv("ADMIN_DATABASE_URL", server_url(database_url))
        monkeypatch.setenv("DATABASE_URL", server_url(database_url))
        settings.REDIS_KEY_PREFIX = f"pr-{number}:"
        call_command("preview_tenant", *arguments, "--database-url-secret", arn)
        return str(arn)

    return run


def test_the_preview_database_url_is_read_from_its_secret(base_task, admin, database_url) -> None:
    preview_url = server_url(database_url, "pr_9001", "pw", "pr_9001")
    base_task(ONE, preview_url, "create", "--connection-limit", "3")

    assert admin.execute("SELECT rolconnlimit FROM pg_roles WHERE rolname = 'pr_9001'").fetchone() == (3,)
    assert can_connect(database_url, "pr_9001", "pr_9001")
    base_task(ONE, preview_url, "drop")
    assert databases(admin) == roles(admin) == set()


def test_a_secret_naming_anything_but_a_preview_is_refused(base_task, admin, database_url) -> None:
    with pytest.raises(CommandError, match=re.escape("user and database must both be pr_<N>")):
        base_task(ONE, server_url(database_url), "drop")  # the base's own URL: never dropped


def test_a_missing_secret_fails_with_one_line(base_task, secrets) -> None:
    missing = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:djcelery-pr-9001-database-url-AbCdEf"
    with pytest.raises(CommandError, match=r"preview_tenant drop: .*ResourceNotFoundException"):
        call_command("preview_tenant", "drop", "--database-url-secret", missing)
