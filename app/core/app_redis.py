"""The app's own Redis keys and client (beside the ones Celery, kombu and RedBeat name themselves)."""

from __future__ import annotations

import os

import redis
from django.conf import settings

_REDIS_TIMEOUT_SECONDS = 2


def redis_key(name: str) -> str:
    """The Redis key of `name`: every key the app names itself goes through here, under the stack's
    REDIS_KEY_PREFIX, so a preview sharing its base's Redis reads and writes only its own keys and
    its drop (`preview_tenant drop`) finds them all."""
    return f"{settings.REDIS_KEY_PREFIX}{name}"


_clients: dict[tuple[int, str], redis.Redis] = {}


def redis_client() -> redis.Redis:
    """This process's client for the app's own keys (pool processes are forked: each makes its
    own), with short timeouts: a half-open Redis holds a task for seconds, not minutes."""
    key = (os.getpid(), settings.REDIS_URL)
    if key not in _clients:
        _clients[key] = redis.Redis.from_url(
            settings.REDIS_URL,
            socket_connect_timeout=_REDIS_TIMEOUT_SECONDS,
            socket_timeout=_REDIS_TIMEOUT_SECONDS,
            retry_on_timeout=False,
            **(settings.REDIS_SSL_OPTIONS or {}),
        )
    return _clients[key]
