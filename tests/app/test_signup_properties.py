"""Properties of the signup API over generated input: no input gets a 5xx, and every spelling of
one mailbox is one signup with one welcome email."""

from __future__ import annotations

import json
import unicodedata

import idna
import pytest
from django.core import mail
from django.test import Client
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from infra import app_contract
from signups.mailbox import InvalidMailbox, delivery_address, identity
from signups.models import Signup
from signups.tasks import send_welcome_email
from signups.views import SignupForm

pytestmark = pytest.mark.django_db

URL = "/api/signups"
# Each example runs against the real database and broker; enough examples to find the odd
# character, few enough for a quick suite.
EXAMPLES = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# Lower-case letters of a few scripts, for internationalized domain labels.
LATIN = "abcdefghijklmnopqrstuvwxyz0123456789"
ACCENTED = "".join(map(chr, range(0xDF, 0xFF)))  # Latin-1 lower case, sharp s included
GREEK = "".join(map(chr, range(0x3B1, 0x3CA)))
CYRILLIC = "".join(map(chr, range(0x430, 0x450)))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
# Addresses that look almost right: random text around an @, with letters from every script.
address_like = st.builds(
    lambda local, at, domain: f"{local}{at}{domain}",
    st.text(max_size=20),
    st.sampled_from(["@", "\uff20", "@@", ""]),
    st.text(max_size=30)
    | st.from_regex(r"[a-zA-Z0-9\u00c0-\u024f\u0400-\u04ff.-]{1,20}\.[a-z]{2,4}", fullmatch=True),
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.dictionaries(st.just("email"), address_like | json_values, min_size=1).map(
        lambda value: json.dumps(value).encode()
    ),
    address_like.map(lambda email: json.dumps({"email": email}, ensure_ascii=False).encode()),
)
content_types = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", ""])


def reset(broker) -> None:
    Signup.objects.all().delete()
    broker.delete(app_contract.EMAIL_QUEUE)
    mail.outbox = []


@EXAMPLES
@given(body=bodies, content_type=content_types, forwarded_for=st.text(max_size=40))
def test_no_input_gets_a_5xx(
    client: Client, broker, body: bytes, content_type: str, forwarded_for: str
) -> None:
    reset(broker)
    response = client.post(URL, data=body, content_type=content_type, HTTP_X_FORWARDED_FOR=forwarded_for)

    assert response.status_code < 500, (body, response.content)
    assert response["Content-Type"] == "application/json"


@EXAMPLES
@given(path=st.text(max_size=60), method=st.sampled_from(["get", "post", "put", "patch", "delete"]))
def test_no_path_under_the_api_gets_a_5xx_or_html(client: Client, path: str, method: str) -> None:
    response = getattr(client, method)(f"{URL}/{path}")

    assert response.status_code < 500, (path, response.content)
    assert response["Content-Type"] == "application/json"


# --- every spelling of one mailbox ------------------------------------------------------------
local_parts = st.from_regex(r"[a-z0-9]{1,8}([._+-][a-z0-9]{1,8}){0,2}", fullmatch=True)
labels = st.text(alphabet=st.sampled_from(LATIN + ACCENTED + GREEK + CYRILLIC), min_size=1, max_size=10)
domains = st.builds(
    lambda names, tld: ".".join([*names, tld]),
    st.lists(labels, min_size=1, max_size=2),
    st.sampled_from(["de", "com"]),
)


def full_width(text: str) -> str:
    """ASCII letters, digits and punctuation as their full-width forms (U+FF01..U+FF5E)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


@st.composite
def spellings(draw: st.DrawFn, address: str) -> str:
    """Another way to write `address`: letter case, compatibility forms, U- or A-label domain."""
    local, _, ascii_domain = address.rpartition("@")
    domain = draw(st.sampled_from([idna.decode(ascii_domain), ascii_domain]))
    if draw(st.booleans()):
        domain = "".join(c.upper() if c.upper().lower() == c and draw(st.booleans()) else c for c in domain)
    local = "".join(c.upper() if draw(st.booleans()) else c for c in local)
    if draw(st.booleans()):
        local = local.replace("K", "\u212a").replace("s", "\u017f")  # KELVIN SIGN, LONG S
    at = draw(st.sampled_from(["@", "\uff20"]))
    spelled = f"{local}{at}{domain}{draw(st.sampled_from(['', '.']))}"
    form = draw(st.sampled_from(["as is", "full width", "NFD"]))
    if form == "full width":
        return full_width(spelled)
    return unicodedata.normalize("NFD", spelled) if form == "NFD" else spelled


@st.composite
def mailbox_and_spellings(draw: st.DrawFn) -> tuple[str, list[str]]:
    try:
        address = delivery_address(f"{draw(local_parts)}@{draw(domains)}")
    except InvalidMailbox:
        assume(False)
    assume(SignupForm({"email": address}).is_valid())  # e.g. Django wants a TLD it knows the shape of
    return address, draw(st.lists(spellings(address), min_size=2, max_size=5))


@EXAMPLES
@given(case=mailbox_and_spellings())
def test_every_spelling_of_one_mailbox_is_one_signup_and_one_email(
    client: Client, broker, case: tuple[str, list[str]]
) -> None:
    reset(broker)
    address, variants = case

    responses = [client.post(URL, data={"email": v}, content_type="application/json") for v in variants]

    assert [r.status_code for r in responses] == [202] * len(variants), [r.content for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1, variants
    signup = Signup.objects.get()
    assert signup.email_canonical == identity(address)
    assert broker.llen(app_contract.EMAIL_QUEUE) == 1, "one mailbox, one welcome email message"
    for response in responses:  # every answer's message runs; one email goes out
        send_welcome_email.apply(args=[response.json()["id"]])
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [signup.email]
