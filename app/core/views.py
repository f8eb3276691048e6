"""Readiness: can this process reach PostgreSQL and Redis right now?

Not used by the ALB health check (that is /healthz, see core.middleware): a database failover
must not make ECS replace every web task. /readyz is for monitoring and deploy smoke tests.
"""

import logging
from functools import lru_cache

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2


@lru_cache(maxsize=4)
def redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_connect_timeout=CHECK_TIMEOUT_SECONDS, socket_timeout=CHECK_TIMEOUT_SECONDS
    )


def database_is_up() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        logger.warning("readiness: PostgreSQL is unreachable", exc_info=True)
        return False
    return True


def redis_is_up() -> bool:
    try:
        redis_client(settings.REDIS_URL).ping()
    except Exception:
        logger.warning("readiness: Redis is unreachable", exc_info=True)
        return False
    return True


@require_GET
def readiness(request: HttpRequest) -> JsonResponse:
    checks = {"database": database_is_up(), "redis": redis_is_up()}
    down = [name for name, up in checks.items() if not up]
    body = {
        "status": "unavailable" if down else "ready",
        "checks": {name: "up" if up else "down" for name, up in checks.items()},
        "down": down,
    }
    return JsonResponse(body, status=503 if down else 200)
