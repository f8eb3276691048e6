"""REDIS_KEY_PREFIX: every Redis key the app uses lives under the stack's prefix (a preview's slice of
the shared broker), read and written against the real Redis.

Each test loads config/settings/base.py afresh with a prefix of its own, builds what the app builds
from those settings (a Celery app, the cache), and looks at the keys that appear in Redis.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import redis
from celery import Celery
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, RequestFactory
from redbeat.schedulers import RedBeatConfig, RedBeatSchedulerEntry

from core import dead_letters, schedule_state
from core.admin_fence import admin_networks
from core.management.commands.release_state import broker_state
from core.views import redis_is_up
from infra import app_contract
from queuemetrics.publisher import BrokerLayout, read_queues
from signups.views import rate_limited
from tests.app.test_settings import load_settings

EMAIL_QUEUE = "email"


def prefixed_app(settings: dict) -> Celery:
    app = Celery("prefix-under-test", set_as_current=False)
    app.config_from_object(SimpleNamespace(**settings), namespace="CELERY")
    return app


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    made = redis.Redis.from_url(redis_url)
    yield made
    made.close()


@pytest.fixture
def stacks(monkeypatch: pytest.MonkeyPatch, client: redis.Redis) -> Iterator[dict[str, dict]]:
    """The settings of two stacks sharing this Redis, each with a prefix of its own."""
    run = uuid.uuid4().hex[:6]
    prefixes = {"one": f"pr-{run}1:", "two": f"pr-{run}2:"}
    loaded = {name: load_settings(monkeypatch, REDIS_KEY_PREFIX=prefix) for name, prefix in prefixes.items()}
    yield loaded
    for prefix in prefixes.values():
        for key in client.scan_iter(match=f"{prefix}*"):
            client.unlink(key)


def keys_under(client: redis.Redis, prefix: str) -> set[str]:
    return {key.decode() for key in client.scan_iter(match=f"{prefix}*")}


def test_the_app_refuses_exactly_what_the_program_may_set(monkeypatch) -> None:
    """The program sets the prefix (infra/app_contract.py); the app checks it at start: one rule."""
    assert load_settings(monkeypatch)["REDIS_KEY_PREFIX_PATTERN"] == app_contract.REDIS_KEY_PREFIX_PATTERN
    assert load_settings(monkeypatch, REDIS_KEY_PREFIX="pr-42:")["REDIS_KEY_PREFIX"] == "pr-42:"


@pytest.mark.parametrize("value", ["PR-1:", "pr-1", "pr_1:", "pr-1:*", "-pr:", "pr-1:x:", "a" * 42 + ":"])
def test_a_prefix_outside_the_pattern_is_refused_at_start(monkeypatch, value: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="REDIS_KEY_PREFIX"):
        load_settings(monkeypatch, REDIS_KEY_PREFIX=value)


def test_a_full_stack_keeps_its_key_names(monkeypatch) -> None:
    settings = load_settings(monkeypatch, REDIS_KEY_PREFIX="")

    assert settings["CACHES"]["default"]["KEY_PREFIX"] == "cache"
    assert settings["CELERY_REDBEAT_KEY_PREFIX"] == "redbeat:"  # Redbeat's own default
    assert settings["CELERY_BROKER_TRANSPORT_OPTIONS"]["global_keyprefix"] == ""


def test_queues_bindings_and_results_are_under_the_prefix(stacks, client: redis.Redis) -> None:
    app = prefixed_app(stacks["one"])
    prefix = stacks["one"]["REDIS_KEY_PREFIX"]
    try:
        app.send_task("signups.tasks.send_welcome_email", args=["x"], queue=EMAIL_QUEUE)
        app.backend.store_result("prefix-test-result", {"ok": True}, "SUCCESS")
    finally:
        app.close()

    keys = keys_under(client, prefix)
    assert f"{prefix}{EMAIL_QUEUE}" in keys
    assert f"{prefix}_kombu.binding.{EMAIL_QUEUE}" in keys
    assert f"{prefix}celery-task-meta-prefix-test-result" in keys


def test_beat_lock_and_schedule_are_under_the_prefix(stacks, client: redis.Redis) -> None:
    app = prefixed_app(stacks["one"])
    prefix = stacks["one"]["REDIS_KEY_PREFIX"]
    conf = RedBeatConfig(app)
    lock = client.lock(conf.lock_key, timeout=5)
    assert lock.acquire(blocking=False)

    RedBeatSchedulerEntry("prefix-entry", "signups.tasks.record_heartbeat", 60, app=app).save()

    keys = keys_under(client, prefix)
    assert {f"{prefix}redbeat::lock", f"{prefix}redbeat::schedule", f"{prefix}redbeat:prefix-entry"} <= keys
    other = RedBeatConfig(prefixed_app(stacks["two"]))
    assert client.lock(other.lock_key, timeout=5).acquire(blocking=False), "each stack has its own Beat lock"


def test_cache_and_rate_limiter_count_per_stack(stacks, settings, client: redis.Redis) -> None:
    settings.RATELIMIT_ENABLE = True
    settings.SIGNUP_RATE_LIMIT = "2/m"
    request = RequestFactory().post("/api/signups", HTTP_X_FORWARDED_FOR="198.51.100.40")

    settings.CACHES = stacks["one"]["CACHES"]
    first = [rate_limited(request) for _ in range(3)]
    settings.CACHES = stacks["two"]["CACHES"]
    second = rate_limited(request)

    assert [answer is None for answer in first] == [True, True, False]
    assert second is None, "another stack's rate limit counts apart"
    one = stacks["one"]["REDIS_KEY_PREFIX"]
    assert any(key.startswith(f"{one}cache:") for key in keys_under(client, one))


def test_schedule_records_are_under_the_prefix(stacks, settings, client: redis.Redis) -> None:
    prefix = stacks["one"]["REDIS_KEY_PREFIX"]
    settings.REDIS_KEY_PREFIX = prefix

    schedule_state.record_sent(client, "prefix-entry", time.time())
    schedule_state.add_skipped(client, "prefix-entry", 1, time.time())

    assert keys_under(client, prefix) == {f"{prefix}schedules:record:prefix-entry"}
    settings.REDIS_KEY_PREFIX = stacks["two"]["REDIS_KEY_PREFIX"]
    assert schedule_state.read_records(client, ["prefix-entry"])["prefix-entry"].skipped == 0


def test_queue_metrics_and_release_check_read_their_own_stack_only(stacks, client: redis.Redis) -> None:
    one, two = prefixed_app(stacks["one"]), prefixed_app(stacks["two"])
    try:
        for _ in range(3):
            one.send_task("signups.tasks.send_welcome_email", args=["x"], queue=EMAIL_QUEUE)
        for _ in range(5):
            two.send_task("signups.tasks.record_heartbeat", queue=EMAIL_QUEUE)

        layout = BrokerLayout.from_transport_options(one.conf.broker_transport_options)
        waiting = read_queues(client, layout, [EMAIL_QUEUE])[EMAIL_QUEUE].waiting
        live = broker_state(one)
    finally:
        one.close()
        two.close()

    assert waiting == 3
    assert live["queues"] == {EMAIL_QUEUE: {"signups.tasks.send_welcome_email": 3}}
    assert layout.task_stats_key("default").startswith(stacks["one"]["REDIS_KEY_PREFIX"])


def test_readiness_and_admin_sign_in_keys_are_under_the_prefix(
    stacks, settings, redis_url: str, client: redis.Redis, django_user_model
) -> None:
    """The keys the app names itself (core.app_redis.redis_key): /readyz's write check, the dead
    letters and delivery counts, and the admin's failed sign-in counts."""
    prefix = stacks["one"]["REDIS_KEY_PREFIX"]
    settings.REDIS_URL = redis_url
    settings.REDIS_KEY_PREFIX = prefix
    settings.ADMIN_ALLOWED_NETWORKS = admin_networks(["0.0.0.0/0", "::/0"])
    django_user_model.objects.create_superuser("ada", "ada@example.com", "the-right-one")

    assert redis_is_up()
    dead_letters.add(client, dead_letters.raw_entry("email", "not a message", "not JSON"))
    dead_letters.count_delivery(client, "a-task-id", 0)
    Client(REMOTE_ADDR="10.0.3.17", HTTP_X_FORWARDED_FOR="203.0.113.9").post(
        "/admin/login/", {"username": "ada", "password": "a-wrong-one", "next": "/admin/"}
    )

    written = keys_under(client, prefix)
    assert f"{prefix}readyz:write-check" in written, f"/readyz wrote outside {prefix!r}: {written}"
    assert {f"{prefix}dead-letters", f"{prefix}deliveries:a-task-id:0"} <= written, written
    assert any(key.startswith(f"{prefix}admin-login:failures:client:") for key in written), (
        f"the failed sign-in was counted outside {prefix!r}: {written}"
    )
