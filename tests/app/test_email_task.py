"""The welcome-email task against a real SMTP server: exactly one email, retries, then `failed`."""

from __future__ import annotations

import threading
import uuid

import pytest
from app_processes import wait_for
from django.db import connection
from fake_smtp import SMTPServer

from signups.models import Signup
from signups.tasks import MAX_DELIVERY_ATTEMPTS, send_welcome_email


def run_task(signup: Signup):
    return send_welcome_email.apply(args=[str(signup.pk)])


@pytest.mark.django_db
def test_a_signup_gets_one_email_with_a_stable_message_id(smtp_email: SMTPServer) -> None:
    signup = Signup.objects.create(email="ada@example.com")

    result = run_task(signup)

    assert result.get() == "sent"
    signup.refresh_from_db()
    assert (signup.status, signup.attempts) == ("sent", 1)
    assert signup.sent_at is not None
    assert smtp_email.recipients() == ["ada@example.com"]
    assert smtp_email.messages[0]["Message-ID"] == f"<welcome-{signup.pk}@example.com>"


@pytest.mark.django_db
def test_running_the_task_twice_sends_one_email(smtp_email: SMTPServer) -> None:
    signup = Signup.objects.create(email="ada@example.com")

    first, second = run_task(signup), run_task(signup)

    assert (first.get(), second.get()) == ("sent", "sent")
    assert smtp_email.recipients() == ["ada@example.com"], "a second run must not send again"
    signup.refresh_from_db()
    assert signup.attempts == 1


def sessions_waiting_for_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_send_one_email(smtp_email: SMTPServer) -> None:
    signup = Signup.objects.create(email="ada@example.com")
    results: list[str] = []

    def run_in_thread() -> None:
        try:
            results.append(run_task(signup).get(propagate=False))
        finally:
            connection.close()

    # The first run reaches the mail server and is held there, mid-send.
    smtp_email.release.clear()
    first = threading.Thread(target=run_in_thread)
    first.start()
    wait_for(smtp_email.data_received.is_set, timeout=10, message="the first run did not reach SMTP")
    # The second run must wait for the first one's row lock instead of sending too.
    second = threading.Thread(target=run_in_thread)
    second.start()
    wait_for(sessions_waiting_for_a_lock, timeout=10, message="the second run did not wait for the lock")
    smtp_email.release.set()
    first.join(10)
    second.join(10)

    assert sorted(results) == ["sent", "sent"]
    assert smtp_email.recipients() == ["ada@example.com"], "concurrent runs must send exactly one email"
    signup.refresh_from_db()
    assert (signup.status, signup.attempts) == ("sent", 1)


@pytest.mark.django_db
def test_smtp_failing_twice_then_working_ends_sent_after_three_attempts(smtp_email: SMTPServer) -> None:
    signup = Signup.objects.create(email="ada@example.com")
    smtp_email.fail_next(2)

    result = run_task(signup)

    assert result.get() == "sent"
    signup.refresh_from_db()
    assert (signup.status, signup.attempts) == ("sent", 3)
    assert smtp_email.recipients() == ["ada@example.com"]


@pytest.mark.django_db
def test_permanent_smtp_failure_ends_failed_after_three_retries(smtp_email: SMTPServer) -> None:
    signup = Signup.objects.create(email="ada@example.com")
    smtp_email.fail_next(100)

    result = run_task(signup)

    assert result.failed(), "the task must end in FAILURE once it gives up"
    signup.refresh_from_db()
    assert signup.status == "failed"
    assert signup.attempts == MAX_DELIVERY_ATTEMPTS
    assert "SMTPDataError" in signup.last_error
    assert smtp_email.recipients() == []
    assert run_task(signup).get() == "failed", "a failed signup is not retried by a late duplicate"


@pytest.mark.django_db
def test_a_message_whose_runs_kept_dying_ends_failed_without_sending(smtp_email: SMTPServer) -> None:
    # Every attempt is recorded before the delivery, so runs killed at the hard time limit (or
    # out of memory) still use up the signup's attempts.
    signup = Signup.objects.create(email="ada@example.com", attempts=MAX_DELIVERY_ATTEMPTS)

    assert run_task(signup).get() == "failed"

    signup.refresh_from_db()
    assert (signup.status, signup.attempts) == ("failed", MAX_DELIVERY_ATTEMPTS)
    assert smtp_email.recipients() == [], "a message that used up its attempts must not send again"


@pytest.mark.django_db
def test_unknown_signup_sends_nothing(smtp_email: SMTPServer) -> None:
    assert send_welcome_email.apply(args=[str(uuid.uuid4())]).get() == "missing"
    assert smtp_email.recipients() == []
