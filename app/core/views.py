"""Readiness: can this process reach PostgreSQL and write to Redis right now?

Not used by the ALB health check (that is /healthz, see core.middleware): a database failover
must not make ECS replace every web task. /readyz is for monitoring and deploy smoke tests.
"""

import logging

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from core.app_redis import redis_client, redis_key

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2
# One small key, written by every check, expiring by itself.
READINESS_KEY = "readyz:write-check"


def database_is_up() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        logger.warning("readiness: PostgreSQL is unreachable", exc_info=True)
        return False
    return True


def redis_is_up() -> bool:
    """Redis answers and takes writes: a replica (READONLY after a failover) or a full one under
    noeviction (OOM) answers PING yet refuses every publish."""
    try:
        redis_client().set(redis_key(READINESS_KEY), "1", ex=CHECK_TIMEOUT_SECONDS * 30)
    except Exception:
        logger.warning("readiness: Redis is unreachable or refuses writes", exc_info=True)
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
