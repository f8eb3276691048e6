"""DATABASE_URL and REDIS_URL: the app's own URL parsers read back exactly what was built."""

import environ
import pytest
from kombu.utils.url import url_to_parts
from redis.connection import parse_url

from infra.data.urls import database_url, redis_url

AWKWARD_SECRET = "p@ss:w/rd#1!&?%"


def test_database_url_round_trips_through_djangos_parser_with_tls_required() -> None:
    url = database_url("app", AWKWARD_SECRET, "db.abc.us-east-1.rds.amazonaws.com", 5432, "app")
    parsed = environ.Env.db_url_config(url)
    assert parsed["PASSWORD"] == AWKWARD_SECRET
    assert (parsed["USER"], parsed["HOST"], parsed["PORT"], parsed["NAME"]) == (
        "app",
        "db.abc.us-east-1.rds.amazonaws.com",
        5432,
        "app",
    )
    assert parsed["OPTIONS"] == {"sslmode": "require"}
    assert parsed["ENGINE"] == "django.db.backends.postgresql"


def test_redis_url_uses_tls_with_certificate_verification_for_redis_py_and_kombu() -> None:
    url = redis_url(AWKWARD_SECRET, "master.broker.abc.use1.cache.amazonaws.com", 6379)
    assert url.startswith("rediss://:")
    assert url.endswith("/0?ssl_cert_reqs=required"), (
        "lower-case 'required' is the only spelling redis-py accepts"
    )
    redis_parts = parse_url(url)
    assert redis_parts["password"] == AWKWARD_SECRET
    assert redis_parts["ssl_cert_reqs"] == "required"
    assert (redis_parts["host"], redis_parts["port"], redis_parts["db"]) == (
        "master.broker.abc.use1.cache.amazonaws.com",
        6379,
        0,
    )
    kombu_parts = url_to_parts(url)
    assert kombu_parts.scheme == "rediss"
    assert kombu_parts.password == AWKWARD_SECRET
    assert kombu_parts.query == {"ssl_cert_reqs": "required"}


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: database_url("app", "pw", "", 5432, "app"), "host must not be empty"),
        (lambda: database_url("app", "pw", "db", 0, "app"), "port must be 1-65535, got 0"),
        (lambda: redis_url("", "redis", 6379), "AUTH token is required"),
        (lambda: redis_url("token", "redis", 70000), "port must be 1-65535, got 70000"),
    ],
)
def test_missing_endpoint_parts_are_refused(build, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()
