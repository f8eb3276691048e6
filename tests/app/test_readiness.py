"""/readyz against a Redis that answers but refuses writes: not ready."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from django.test import Client

from testkit.processes import RedisServer


@pytest.fixture(scope="module")
def full_redis() -> Iterator[RedisServer]:
    """Full under noeviction, as ElastiCache is configured: PING answers, every write gets OOM."""
    server = RedisServer("--maxmemory", "1", "--maxmemory-policy", "noeviction")
    server.start()
    yield server
    server.stop()


@pytest.mark.django_db
def test_readyz_is_not_ready_while_redis_refuses_writes(settings, full_redis: RedisServer) -> None:
    assert redis.Redis.from_url(full_redis.url).ping(), "the server answers"
    settings.REDIS_URL = full_redis.url
    response = Client().get("/readyz")

    assert response.status_code == 503, response.content
    assert response.json()["checks"] == {"database": "up", "redis": "down"}


@pytest.mark.django_db
def test_readyz_is_ready_when_redis_takes_writes(redis_url: str, settings) -> None:
    settings.REDIS_URL = redis_url
    assert Client().get("/readyz").json()["status"] == "ready"
