"""Fixtures for the application tests: real PostgreSQL, Redis, SMTP and app processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from infra import app_contract
from testkit.processes import django_database_url
from testkit.smtp import SMTPServer


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    with SMTPServer() as server:
        yield server


@pytest.fixture
def smtp_email(settings, smtp_server: SMTPServer) -> SMTPServer:
    """Django sends through the fake SMTP server (the production backend, not locmem)."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp_server.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    return smtp_server


@pytest.fixture(scope="session")
def test_database_url(django_db_setup, django_db_blocker) -> str:
    """DATABASE_URL of pytest-django's test database, for processes started by the tests."""
    from django.db import connection

    return django_database_url(connection.settings_dict)


@pytest.fixture
def broker(redis_url: str) -> Iterator[redis.Redis]:
    """The Redis the app uses, with the app's queues emptied before and after the test."""
    client = redis.Redis.from_url(redis_url)
    client.delete(*app_contract.QUEUES)
    yield client
    client.delete(*app_contract.QUEUES)
    client.close()
