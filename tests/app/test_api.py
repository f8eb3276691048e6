"""The signup API in-process: every kind of bad input gets its 4xx, good input a 202."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from django.core.cache import cache
from django.test import Client, RequestFactory

from core.client import UNKNOWN_CLIENT, client_ip
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


def test_a_signup_id_in_any_letter_case_finds_the_signup(client: Client) -> None:
    signup = Signup.objects.create(email="ada@example.com")

    for spelling in (str(signup.pk).upper(), str(signup.pk).swapcase()):
        response = client.get(f"{URL}/{spelling}")
        assert response.status_code == 200, (spelling, response.content)
        assert response.json()["id"] == str(signup.pk)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("get", URL, "POST"),
        ("put", URL, "POST"),
        ("post", f"{URL}/{uuid.uuid4()}", "GET"),
        ("put", f"{URL}/{uuid.uuid4()}", "GET"),
        ("patch", f"{URL}/{str(uuid.uuid4()).upper()}", "GET"),
        ("delete", f"{URL}/{uuid.uuid4()}", "GET"),
        ("options", f"{URL}/{uuid.uuid4()}", "GET"),
    ],
)
def test_wrong_methods_get_405_in_json_naming_the_allowed_one(client: Client, method, path, allowed) -> None:
    response = getattr(client, method)(path)

    assert response.status_code == 405, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "method not allowed"}
    assert response["Allow"] == allowed


@pytest.mark.parametrize("path", ["/api/", "/api/signup", f"{URL}/not-a-uuid", f"{URL}/{uuid.uuid4()}/x"])
def test_unknown_api_paths_get_404_in_json(client: Client, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 404, response.content
    assert response.json() == {"error": "not found"}


def test_a_content_length_that_is_not_a_number_gets_400(client: Client) -> None:
    response = client.post(URL, data=b"{}", content_type="application/json", CONTENT_LENGTH="12abc")

    assert response.status_code == 400, response.content
    assert "Content-Length" in response.json()["error"]


def test_a_rejected_host_is_400_json_and_one_warning_without_traceback(client: Client, caplog) -> None:
    response = client.get(f"{URL}/{uuid.uuid4()}", HTTP_HOST="attacker.example")

    assert response.status_code == 400
    assert response.json() == {"error": "bad request"}
    [record] = [r for r in caplog.records if r.name == "django.security.DisallowedHost"]
    assert (record.levelname, record.exc_info, record.exc_text) == ("WARNING", None, None)


@pytest.mark.django_db(transaction=True)
def test_every_spelling_of_a_mailbox_is_one_signup(client: Client, broker) -> None:
    spellings = [
        "ada@bücher.de",
        "ADA@BÜCHER.DE",
        "ada@xn--bcher-kva.de",
        "Ada@XN--BCHER-KVA.de.",
        "\uff41\uff44\uff41\uff20\uff42\u00fc\uff43\uff48\uff45\uff52\uff0e\uff44\uff45",  # full-width
        "ada@bu\u0308cher.de",  # u + combining diaeresis (NFD)
    ]

    ids = {post_json(client, {"email": spelling}).json()["id"] for spelling in spellings}

    assert len(ids) == 1, ids
    signup = Signup.objects.get()
    assert (signup.email, signup.email_canonical) == ("ada@xn--bcher-kva.de", "ada@xn--bcher-kva.de")
    assert broker.llen("email") == 1, "one mailbox, one welcome email"


@pytest.mark.parametrize(
    "first, second",
    [
        ("ada@example.com", "ADA@EXAMPLE.COM"),
        ("kate@example.com", "\u212aate@example.com"),  # KELVIN SIGN K
        ("sam@example.com", "\u017fam@example.com"),  # LATIN SMALL LETTER LONG S
    ],
)
def test_unicode_case_variants_are_the_same_mailbox(client: Client, broker, first, second) -> None:
    first_body = post_json(client, {"email": first}).json()
    second_response = post_json(client, {"email": second})

    assert second_response.status_code == 202, second_response.content
    assert second_response.json()["id"] == first_body["id"]
    assert Signup.objects.count() == 1


@pytest.mark.parametrize(
    "email",
    [
        "\u0130da@example.com",  # I with dot above: no ASCII local part in any spelling
        "ada@exa\ud800mple.com",  # a lone surrogate
        "ada@-example.com",
        "ada@example..com",
        "ad\x00a@example.com",
    ],
)
def test_addresses_we_cannot_deliver_to_get_400(client: Client, email: str) -> None:
    response = post_json(client, {"email": email})

    assert response.status_code == 400, response.content
    assert not Signup.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_rate_limit_answers_429_in_json_per_client_address(client: Client, settings, broker) -> None:
    settings.RATELIMIT_ENABLE = True
    settings.SIGNUP_RATE_LIMIT = "3/m"
    cache.clear()
    alb_hop = {"HTTP_X_FORWARDED_FOR": "203.0.113.9, 198.51.100.7"}  # the client's claim, then the ALB's

    answers = [
        client.post(URL, data=json.dumps({"email": f"user{n}@example.com"}), content_type="application/json",
                    **alb_hop).status_code
        for n in range(5)
    ]
    limited = client.post(URL, data=json.dumps({"email": "x@example.com"}), content_type="application/json",
                          **alb_hop)
    forged = {"HTTP_X_FORWARDED_FOR": "203.0.113.10, 198.51.100.7"}  # another claim, same real client
    other_client = {"HTTP_X_FORWARDED_FOR": "203.0.113.9, 198.51.100.8"}

    assert answers == [202, 202, 202, 429, 429]
    assert limited.json()["error"].startswith("too many signups")
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert client.post(URL, data="{}", content_type="application/json", **forged).status_code == 429
    assert client.post(URL, data=json.dumps({"email": "y@example.com"}), content_type="application/json",
                       **other_client).status_code == 202
    assert Signup.objects.count() == 4


@pytest.mark.parametrize(
    ("forwarded_for", "remote_addr", "client"),
    [
        ("203.0.113.9, 198.51.100.7", "10.0.0.2", "198.51.100.7"),  # only the ALB's hop is trusted
        ("198.51.100.7:43512", "10.0.0.2", "198.51.100.7"),  # the ALB's client-port option
        ("2001:db8::1, [2001:db8::7]:443", "10.0.0.2", "2001:db8::7"),
        ("", "10.0.0.2", "10.0.0.2"),  # no load balancer (a local run)
        ("not an address", "10.0.0.2", "10.0.0.2"),
        ("", "", UNKNOWN_CLIENT),
    ],
)
def test_the_client_address_is_the_hop_the_load_balancer_appends(forwarded_for, remote_addr, client) -> None:
    request = RequestFactory().get("/", HTTP_X_FORWARDED_FOR=forwarded_for, REMOTE_ADDR=remote_addr)

    assert client_ip(request) == client


@pytest.mark.django_db(transaction=True)
def test_the_rate_limit_lets_signups_through_when_its_cache_is_down(client: Client, settings, broker) -> None:
    settings.RATELIMIT_ENABLE = True
    settings.SIGNUP_RATE_LIMIT = "1/m"
    unreachable = {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:9/0"}
    settings.CACHES = {"default": unreachable}

    answers = [post_json(client, {"email": f"user{n}@example.com"}).status_code for n in range(3)]

    assert answers == [202, 202, 202], "with no cache to count in, the limit fails open"


def test_an_integer_longer_than_python_parses_gets_400_not_500(client: Client) -> None:
    """CPython refuses to convert more than 4,300 digits (sys.get_int_max_str_digits) with a
    ValueError that is no JSONDecodeError."""
    response = client.post(URL, data='{"email": ' + "9" * 5001 + "}", content_type="application/json")

    assert response.status_code == 400, response.content
    assert response.json()["error"] == "request body is not valid JSON: ValueError"
