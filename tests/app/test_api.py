"""The signup API in-process: every kind of bad input gets its 4xx, good input a 202."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from django.test import Client

from signups.models import Signup

pytestmark = pytest.mark.django_db

URL = "/api/signups"


def post_json(client: Client, body: object, content_type: str = "application/json"):
    return client.post(URL, data=json.dumps(body), content_type=content_type)


def test_valid_signup_is_stored_enqueued_and_answered_202_at_once(client: Client, broker) -> None:
    started = time.monotonic()
    response = post_json(client, {"email": "ada@example.com"})
    elapsed = time.monotonic() - started

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued"
    signup = Signup.objects.get(pk=body["id"])
    assert signup.email == "ada@example.com"
    assert signup.enqueued_at is not None, "the welcome email was not handed to the broker"
    assert broker.llen("email") == 1, "the welcome email task must be routed to the email queue"
    assert elapsed < 2, f"the API waited {elapsed:.1f} s; it must not wait for the email"


@pytest.mark.parametrize(
    ("body", "expected_code"),
    [
        ({}, "required"),
        ({"email": ""}, "required"),
        ({"email": "not-an-email"}, "invalid"),
        ({"email": 42}, "invalid"),
        ({"email": "a" * 250 + "@example.com"}, "max_length"),
    ],
)
def test_missing_or_invalid_email_gets_400_with_field_errors(
    client: Client, body: dict, expected_code: str
) -> None:
    response = post_json(client, body)

    assert response.status_code == 400, response.content
    codes = [error["code"] for error in response.json()["errors"]["email"]]
    assert expected_code in codes, f"email errors {codes} should include {expected_code!r}"
    assert not Signup.objects.exists()


@pytest.mark.parametrize("raw_body", [b"{not json", b"\xff\xfe", b"  ", b'["ada@example.com"]', b'"x"'])
def test_body_that_is_not_a_json_object_gets_400(client: Client, raw_body: bytes) -> None:
    response = client.post(URL, data=raw_body, content_type="application/json")

    assert response.status_code == 400, response.content
    assert "JSON" in response.json()["error"]


def test_wrong_content_type_gets_415(client: Client) -> None:
    response = client.post(URL, data={"email": "ada@example.com"})  # a form post

    assert response.status_code == 415, response.content
    assert "application/json" in response.json()["error"]


def test_body_over_64_kib_gets_413_and_stores_nothing(client: Client) -> None:
    response = post_json(client, {"email": "ada@example.com", "padding": "x" * 64 * 1024})

    assert response.status_code == 413, response.content
    assert not Signup.objects.exists()


def test_duplicate_email_is_idempotent_202_with_the_same_signup(client: Client, broker) -> None:
    first = post_json(client, {"email": "Ada@Example.com"}).json()
    second = post_json(client, {"email": "ada@example.com"})

    assert second.status_code == 202, second.content
    assert second.json()["id"] == first["id"], "a duplicate must answer with the existing signup"
    assert Signup.objects.count() == 1
    assert broker.llen("email") == 1, "a duplicate must not enqueue a second email"


def test_get_returns_status_attempts_and_timestamps(client: Client) -> None:
    signup = Signup.objects.create(email="ada@example.com")

    response = client.get(f"{URL}/{signup.pk}")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == str(signup.pk)
    assert body["status"] == "queued"
    assert body["attempts"] == 0
    assert body["created_at"] and body["updated_at"]
    assert body["sent_at"] is None
    assert "email" not in body, "the status endpoint must not disclose email addresses"


def test_unknown_signup_gets_404(client: Client) -> None:
    response = client.get(f"{URL}/{uuid.uuid4()}")

    assert response.status_code == 404
    assert response.json()["error"]


def test_wrong_methods_get_405(client: Client) -> None:
    assert client.get(URL).status_code == 405
    assert client.post(f"{URL}/{uuid.uuid4()}").status_code == 405
