"""Ceilings above the per-client signup limit (signups.ceilings): an IPv6 /48 together, and each web
process, the latter holding while Redis refuses the limiter's writes."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.test import Client

from testkit.processes import RedisServer

URL = "/api/signups"
ALB = "10.0.3.17"


def post_from(client_address: str, email: str) -> object:
    client = Client(REMOTE_ADDR=ALB, HTTP_X_FORWARDED_FOR=client_address)
    return client.post(URL, data=json.dumps({"email": email}), content_type="application/json")


@pytest.fixture
def limits_on(settings) -> None:
    settings.RATELIMIT_ENABLE = True
    settings.SIGNUP_RATE_LIMIT = "100/m"
    settings.SIGNUP_PREFIX_RATE_LIMIT = "3/m"
    cache.clear()


@pytest.mark.django_db(transaction=True)
def test_one_ipv6_48_gets_a_ceiling_across_its_64s(limits_on, broker) -> None:
    """Each /64 is a client of its own for SIGNUP_RATE_LIMIT; the /48 holds 65,536 of them."""
    answers = [post_from(f"2001:db8:7:{n}::1", f"v6-{n}@example.com") for n in range(5)]

    assert [answer.status_code for answer in answers] == [202, 202, 202, 429, 429]
    assert answers[-1].json()["error"] == "too many signups from this network; try again later"
    assert 1 <= int(answers[-1]["Retry-After"]) <= 60
    assert post_from("2001:db8:8::1", "other-48@example.com").status_code == 202
    # IPv4 clients are counted per address only.
    assert [post_from(f"198.51.100.{n}", f"v4-{n}@example.com").status_code for n in range(5)] == [202] * 5


@pytest.fixture
def full_redis() -> Iterator[RedisServer]:
    """A Redis that answers and refuses every write (full under noeviction)."""
    server = RedisServer("--maxmemory", "1", "--maxmemory-policy", "noeviction")
    server.start()
    yield server
    server.stop()


@pytest.mark.django_db(transaction=True)
def test_each_process_keeps_a_ceiling_while_redis_refuses_the_limiters_writes(
    limits_on, settings, broker, full_redis: RedisServer
) -> None:
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": full_redis.url}}
    settings.SIGNUP_RATE_LIMIT = "1/m"
    settings.SIGNUP_PROCESS_RATE_LIMIT = 3

    answers = [post_from("203.0.113.9", f"user{n}@example.com") for n in range(5)]

    # The per-client limit cannot count (it fails open); the process ceiling needs no Redis.
    assert [answer.status_code for answer in answers] == [202, 202, 202, 503, 503]
    assert answers[-1].json()["error"].startswith("signups are busier than this service takes")
    assert 1 <= int(answers[-1]["Retry-After"]) <= 20
