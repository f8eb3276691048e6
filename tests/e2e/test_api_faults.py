"""Hostile and odd input over HTTP, with the real web, worker and mail server: spellings of one
mailbox, a client over the rate limit, and clients trickling their requests. Each ends with the data
check of tests/e2e/ledger.py."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import requests

from infra import app_contract
from testkit.tricklers import Tricklers, trickled_requests
from tests.e2e.ledger import Scenario

# One mailbox each, and the ways people (and their keyboards) write it.
MAILBOXES = {
    "ada@xn--bcher-kva.de": [
        "ada@b\u00fccher.de",
        "ADA@B\u00dcCHER.DE",
        "Ada@xn--bcher-kva.de",
        "\uff41\uff44\uff41\uff20\uff42\u00fc\uff43\uff48\uff45\uff52\uff0e\uff44\uff45",  # full-width
    ],
    "kate@example.com": [
        "kate@example.com",
        "KATE@Example.COM",
        "\u212aate@example.com",  # KELVIN SIGN
        "kate@example.com.",
    ],
    "sam@xn--strae-oqa.de": [
        "sam@stra\u00dfe.de",
        "SAM@STRA\u00dfE.DE",
        "\u017fam@xn--strae-oqa.de",  # LONG S
        "sam@stra\u00dfe.de.",
    ],
}
RATE_LIMIT = 10  # SIGNUP_RATE_LIMIT of the app: 10 per minute per client address


def test_spellings_of_one_mailbox(scenario: Scenario) -> None:
    """Every spelling of a mailbox, sent at once from different clients, is one signup and gets
    one email, at the address's A-label form."""
    stack = scenario.stack
    scenario.start_worker()
    spellings = [spelling for variants in MAILBOXES.values() for spelling in variants]

    answers = stack.sign_up(spellings, parallel=len(spellings))

    ids = {json.loads(answer.body)["id"] for answer in answers}
    assert len(ids) == len(MAILBOXES), f"{len(ids)} signups for {len(MAILBOXES)} mailboxes"
    scenario.emails.extend(MAILBOXES)
    scenario.settle_emails(timeout=60)


def test_a_client_over_the_rate_limit(scenario: Scenario) -> None:
    """One client address posts more than the limit allows in a minute: the extra signups get 429
    in JSON with Retry-After, and every accepted one gets its email once. Another client is not
    affected."""
    stack = scenario.stack
    scenario.start_worker()
    emails = [f"{scenario.name}-{index}@example.com" for index in range(RATE_LIMIT + 5)]
    one_client = "203.0.113.50"  # what the ALB appends; what the client claims comes before it

    with requests.Session() as session, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(
            lambda email: stack.post_signup(session, email, client=f"10.9.9.9, {one_client}"), emails
        ))
        limited = [answer for answer in answers if answer.status == 429]
        other = stack.post_signup(session, "another-client@example.com")

    accepted = [email for email, answer in zip(emails, answers, strict=True) if answer.status == 202]
    statuses = [answer.status for answer in answers]
    assert len(accepted) == RATE_LIMIT and len(limited) == len(emails) - RATE_LIMIT, statuses
    assert json.loads(limited[0].body)["error"].startswith("too many signups")
    assert other.status == 202, other
    scenario.emails.extend([*accepted, "another-client@example.com"])
    scenario.settle_emails(timeout=60)


def test_signups_flow_while_clients_trickle(scenario: Scenario) -> None:
    """Forty clients trickle their requests a byte at a time, more than the web task has threads,
    while fifty people sign up: /healthz keeps answering (so ECS keeps the task), every signup is
    answered and each gets its email once (core.buffering_worker)."""
    stack = scenario.stack
    scenario.start_worker()
    with Tricklers(stack.web_port, trickled_requests()):
        scenario.sign_up(50)
        assert stack.get(app_contract.LIVENESS_PATH) == 200, "/healthz stopped answering"
    scenario.settle_emails(timeout=60)
