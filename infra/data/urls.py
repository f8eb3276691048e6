"""Connection URLs for the app's DATABASE_URL and REDIS_URL secrets.

Credentials are percent-encoded: an unencoded `#`, `/` or `@` in a password or an ElastiCache AUTH
token breaks URL parsing in the app. Both URLs always ask for TLS: PostgreSQL with
`sslmode=require` (the RDS parameter group also forces it), Redis with `rediss://` and a lower-case
`ssl_cert_reqs=required`; without it kombu silently connects without checking the certificate,
and redis-py rejects the upper-case spelling.
"""

from __future__ import annotations

from urllib.parse import quote


def _check_endpoint(host: str, port: int) -> None:
    if not host:
        raise ValueError("host must not be empty")
    if not 0 < port < 65536:
        raise ValueError(f"port must be 1-65535, got {port}")


def database_url(user: str, password: str, host: str, port: int, database: str) -> str:
    _check_endpoint(host, port)
    credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return f"postgres://{credentials}@{host}:{port}/{quote(database, safe='')}?sslmode=require"


def redis_url(auth_token: str, host: str, port: int, database: int = 0) -> str:
    _check_endpoint(host, port)
    if not auth_token:
        raise ValueError("an ElastiCache AUTH token is required (transit encryption is on)")
    return f"rediss://:{quote(auth_token, safe='')}@{host}:{port}/{database}?ssl_cert_reqs=required"
