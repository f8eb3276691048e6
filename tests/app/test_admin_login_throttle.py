"""Failed admin sign-ins lock out per client address and per user name (core.login_throttle),
counted in the real Redis; without Redis, sign-in is refused rather than left unthrottled."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings as django_settings
from django.test import Client

from core.admin_fence import admin_networks
from core.login_throttle import DEVICE_COOKIE, KEY_PREFIX

LOGIN = "/admin/login/"
PASSWORD = "not-a-real-password"


@pytest.fixture
def throttle(settings, redis_url: str, django_user_model):
    settings.REDIS_URL = redis_url
    settings.ADMIN_ALLOWED_NETWORKS = admin_networks(["0.0.0.0/0", "::/0"])
    settings.ADMIN_LOGIN_MAX_FAILURES_PER_USER = 3
    settings.ADMIN_LOGIN_MAX_FAILURES_PER_CLIENT = 5
    store = redis.Redis.from_url(redis_url)

    def clear() -> None:
        for key in store.scan_iter(f"{KEY_PREFIX}:*"):
            store.delete(key)

    clear()
    django_user_model.objects.create_superuser("ada", "ada@example.com", PASSWORD)
    yield
    clear()


def sign_in(username: str, password: str, client_address: str = "203.0.113.9", client: Client | None = None):
    client = client or Client(REMOTE_ADDR="10.0.3.17", HTTP_X_FORWARDED_FOR=client_address)
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"})


def sign_out(client: Client) -> None:
    """The session ends; the browser keeps its other cookies (Client.logout() would drop them all)."""
    del client.cookies[django_settings.SESSION_COOKIE_NAME]


def browser(client_address: str) -> Client:
    """A browser behind the load balancer, which keeps its cookies between requests."""
    return Client(REMOTE_ADDR="10.0.3.17", HTTP_X_FORWARDED_FOR=client_address)


@pytest.mark.django_db
def test_a_user_name_is_locked_out_after_its_failures_even_with_the_right_password(throttle) -> None:
    assert [sign_in("ada", "wrong").status_code for _ in range(3)] == [200, 200, 200]  # the form again

    locked = sign_in("ada", PASSWORD, client_address="198.51.100.4")  # from anywhere

    assert locked.status_code == 429
    assert 1 <= int(locked["Retry-After"]) <= 15 * 60
    assert sign_in("grace", "wrong").status_code == 200, "other user names are not locked"


@pytest.mark.django_db
def test_a_client_is_refused_after_its_failures_whatever_user_name_it_tries(throttle) -> None:
    answers = [sign_in(f"user{n}", "wrong", "2001:db8:1:2::7").status_code for n in range(5)]
    assert answers == [200] * 5
    # Its whole /64 is one client; another /64 is not.
    assert sign_in("ada", PASSWORD, "2001:db8:1:2::99").status_code == 429
    assert sign_in("ada", PASSWORD, "2001:db8:1:3::7").status_code == 302


@pytest.mark.django_db
def test_a_success_clears_the_user_names_failures(throttle) -> None:
    for _ in range(2):
        sign_in("ada", "wrong")
    assert sign_in("ada", PASSWORD).status_code == 302
    assert [sign_in("ada", "wrong").status_code for _ in range(2)] == [200, 200]


@pytest.mark.django_db
def test_without_redis_sign_in_is_refused_and_the_form_still_shows(throttle, settings) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens on the discard port
    refused = sign_in("ada", PASSWORD)
    form = Client(REMOTE_ADDR="127.0.0.1").get(LOGIN)
    assert (refused.status_code, refused["Retry-After"]) == (503, "30")
    assert form.status_code == 200


@pytest.mark.django_db
def test_a_browser_that_signed_in_before_gets_in_while_guessing_locks_the_user_name(throttle) -> None:
    """OWASP's device cookies: a lockout per user name must not lock out the user's own browser."""
    admins_browser = browser("198.51.100.4")
    assert sign_in("ada", PASSWORD, client=admins_browser).status_code == 302
    sign_out(admins_browser)
    cookie = admins_browser.cookies[DEVICE_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/admin/", cookie

    assert [sign_in("ada", "wrong", "203.0.113.66").status_code for _ in range(3)] == [200, 200, 200]
    assert sign_in("ada", PASSWORD, "192.0.2.10").status_code == 429, "the guessed user name is locked"

    assert sign_in("ada", PASSWORD, client=admins_browser).status_code == 302, (
        "the browser that signed in as ada before must still get in"
    )


@pytest.mark.django_db
def test_a_device_cookie_counts_for_its_own_user_name_and_locks_its_own_failures(
    throttle, django_user_model
) -> None:
    django_user_model.objects.create_superuser("grace", "grace@example.com", PASSWORD)
    graces_browser = browser("198.51.100.4")
    assert sign_in("grace", PASSWORD, client=graces_browser).status_code == 302
    sign_out(graces_browser)
    for _ in range(3):
        sign_in("ada", "wrong", "203.0.113.66")
    assert sign_in("ada", PASSWORD, client=graces_browser).status_code == 429, (
        "a cookie for grace does nothing for ada"
    )

    own = browser("198.51.100.7")
    assert sign_in("ada", PASSWORD, client=own).status_code == 429  # locked, no cookie yet
    forged = browser("198.51.100.8")
    forged.cookies[DEVICE_COOKIE] = "ada:forged:signature"
    assert sign_in("ada", PASSWORD, client=forged).status_code == 429, "an unsigned cookie is no device"

    assert [sign_in("grace", "wrong", client=graces_browser).status_code for _ in range(3)] == [200] * 3
    assert sign_in("grace", PASSWORD, client=graces_browser).status_code == 429, (
        "a device's own failures lock the device"
    )
