"""The app's fence around the admin (core.admin_fence): ADMIN_ALLOWED_CIDRS after decoding the path."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from core.admin_fence import admin_networks

ALB = "10.0.3.17"  # the request's peer; the client is the hop the ALB appends to X-Forwarded-For
SPELLINGS = ["/admin/", "/ADMIN/", "/%61dmin/", "/%2561dmin/", "/%2F%2Fadmin/", "/Admin/login/", "/admin"]


def get(path: str, client_address: str):
    return Client(REMOTE_ADDR=ALB).get(path, headers={"X-Forwarded-For": f"198.51.100.250, {client_address}"})


@pytest.fixture
def allow(settings):
    def allow(*cidrs: str) -> None:
        settings.ADMIN_ALLOWED_NETWORKS = admin_networks(cidrs)

    return allow


@pytest.mark.django_db
@pytest.mark.parametrize("path", SPELLINGS)
def test_every_spelling_of_the_admin_is_not_found_outside_the_allowed_networks(allow, path: str) -> None:
    allow("203.0.113.0/24", "2001:db8::/32")
    response = get(path, "192.0.2.44")
    assert (response.status_code, response.content, response["Content-Type"]) == (
        404,
        b"Not Found",
        "text/plain",
    )


@pytest.mark.django_db
@pytest.mark.parametrize("client_address", ["203.0.113.9", "2001:db8::7", "::ffff:203.0.113.9"])
def test_the_allowed_networks_reach_the_admin_login(allow, client_address: str) -> None:
    allow("203.0.113.0/24", "2001:db8::/32")
    response = get("/admin/", client_address)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.django_db
def test_everyone_reaches_it_with_both_zero_networks_and_nobody_with_none(allow) -> None:
    allow("0.0.0.0/0", "::/0")
    assert get("/admin/login/", "2a00:1450::1").status_code == 200
    assert get("/admin/login/", "192.0.2.44").status_code == 200
    allow()
    assert get("/admin/login/", "127.0.0.1").status_code == 404


@pytest.mark.django_db
def test_other_paths_are_not_fenced(allow) -> None:
    allow()
    assert get("/readyz", "192.0.2.44").status_code in (200, 503)
    assert get("/api/nothing", "192.0.2.44").json() == {"error": "not found"}


def test_a_value_that_is_no_network_stops_the_app_naming_the_variable() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"ADMIN_ALLOWED_CIDRS holds '10\.0\.0\.300/8'"):
        admin_networks(["10.0.0.0/8", "10.0.0.300/8"])
