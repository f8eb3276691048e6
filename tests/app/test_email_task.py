"""The welcome-email task against a real SMTP server: exactly one email, retries over a window
stored in the database, a permanent rejection or the end of the window ends them."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from signups.models import Signup
from signups.tasks import retry_delay, send_welcome_email
from testkit.processes import wait_for
from testkit.smtp import SMTPServer

pytestmark = pytest.mark.django_db

ADDRESS = "ada@example.com"


def run_task(signup: Signup):
    return send_welcome_email.apply(args=[str(signup.pk)])


@pytest.fixture
def quick_retries(settings):
    """A one-second backoff, so a retry falls due within the test."""
    settings.WELCOME_EMAIL_RETRY_BACKOFF_SECONDS = 1
    settings.WELCOME_EMAIL_RETRY_MAX_DELAY_SECONDS = 1
    return settings


def test_a_signup_gets_one_email_with_a_stable_message_id(smtp_email: SMTPServer) -> None:
    signup = Signup.objects.create(email=ADDRESS)

    result = run_task(signup)

    assert result.get() == "sent"
    signup.refresh_from_db()
    assert (signup.status, signup.attempts) == ("sent", 1)
    assert signup.sent_at is not None and signup.next_attempt_at is None
    assert smtp_email.recipients() == [ADDRESS]
    assert smtp_email.messages[0]["Message-ID"] == f"<welcome-{signup.pk}@example.com>"


def test_running_the_task_twice_sends_one_email(smtp_email: SMTPServer) -> None:
    signup = Signup.objects.create(email=ADDRESS)

    first, second = run_task(signup), run_task(signup)

    assert (first.get(), second.get()) == ("sent", "sent")
    assert smtp_email.recipients() == [ADDRESS], "a second run must not send again"
    signup.refresh_from_db()
    assert signup.attempts == 1


@pytest.mark.django_db(transaction=True)
def test_a_run_during_another_runs_attempt_sends_nothing_and_does_not_wait(smtp_email: SMTPServer) -> None:
    signup = Signup.objects.create(email=ADDRESS)
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
    # A duplicate message finds the attempt recorded (and its lease running): it ends at once.
    assert run_task(signup).get() == "scheduled"
    smtp_email.release.set()
    first.join(10)

    assert results == ["sent"]
    assert smtp_email.recipients() == [ADDRESS], "concurrent runs must send exactly one email"
    signup.refresh_from_db()
    assert (signup.status, signup.attempts) == ("sent", 1)


def test_a_temporary_failure_schedules_the_next_attempt_in_the_database(smtp_email, quick_retries) -> None:
    signup = Signup.objects.create(email=ADDRESS, enqueued_at=timezone.now())
    smtp_email.fail_next(1)
    before = timezone.now()

    assert run_task(signup).get() == "queued"

    signup.refresh_from_db()
    assert signup.attempts == 1 and "SMTPDataError" in signup.last_error
    assert before + timedelta(seconds=0.5) <= signup.next_attempt_at <= timezone.now() + timedelta(seconds=1)
    assert signup.enqueued_at is None, "no message is out: the sweep publishes the retry when it is due"
    # The retry is no broker countdown: a run before its time does nothing.
    assert run_task(signup).get() == "scheduled"
    wait_for(lambda: run_task(signup).get() == "sent", timeout=10, message="the retry never went out")
    signup.refresh_from_db()
    assert (signup.status, signup.attempts) == ("sent", 2)
    assert smtp_email.recipients() == [ADDRESS]


def test_a_mail_server_that_is_down_is_retried_like_a_4xx(smtp_email, quick_retries) -> None:
    signup = Signup.objects.create(email=ADDRESS)
    smtp_email.go_down()

    assert run_task(signup).get() == "queued"

    signup.refresh_from_db()
    assert signup.status == "queued" and signup.next_attempt_at is not None
    assert smtp_email.refused_connections == 1
    smtp_email.come_back()
    wait_for(lambda: run_task(signup).get() == "sent", timeout=10, message="the retry never went out")


def test_backoff_doubles_from_the_first_delay_up_to_the_longest(settings) -> None:
    settings.WELCOME_EMAIL_RETRY_BACKOFF_SECONDS = 30
    settings.WELCOME_EMAIL_RETRY_MAX_DELAY_SECONDS = 1800
    for attempts, ceiling in [(1, 30), (2, 60), (3, 120), (7, 1800), (10_000, 1800)]:
        delays = [retry_delay(attempts).total_seconds() for _ in range(50)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays), (attempts, min(delays), max(delays))


def test_a_permanent_rejection_fails_at_once_and_keeps_the_address_out_of_the_logs(
    smtp_email: SMTPServer, caplog
) -> None:
    signup = Signup.objects.create(email=ADDRESS)
    smtp_email.reject(ADDRESS)

    assert run_task(signup).get() == "failed"

    signup.refresh_from_db()
    assert (signup.status, signup.attempts, signup.next_attempt_at) == ("failed", 1, None)
    assert "SMTPRecipientsRefused" in signup.last_error and "550" in signup.last_error
    assert smtp_email.recipients() == []
    assert "rejected permanently" in caplog.text
    assert ADDRESS not in caplog.text, "the mail server's reply quotes the address; logs must not"
    assert run_task(signup).get() == "failed", "a failed signup is not retried by a late duplicate"


def test_a_failure_after_the_retry_window_fails_for_good(smtp_email: SMTPServer) -> None:
    signup = Signup.objects.create(email=ADDRESS, retry_until=timezone.now())
    smtp_email.fail_next(1)

    assert run_task(signup).get() == "failed"

    signup.refresh_from_db()
    assert signup.status == "failed" and signup.next_attempt_at is None
    assert smtp_email.recipients() == []


def test_the_last_retry_is_due_at_the_end_of_the_window(smtp_email: SMTPServer) -> None:
    window_end = timezone.now() + timedelta(seconds=5)
    signup = Signup.objects.create(email=ADDRESS, retry_until=window_end, attempts=20)
    smtp_email.fail_next(1)

    assert run_task(signup).get() == "queued"

    signup.refresh_from_db()
    assert signup.next_attempt_at == window_end, "a backoff past the window is cut to its end"


def test_a_killed_attempt_holds_its_lease_then_is_tried_again(smtp_email: SMTPServer, settings) -> None:
    # What a run killed mid-attempt (hard time limit, out of memory) leaves behind.
    lease_end = timezone.now() + timedelta(seconds=1)
    signup = Signup.objects.create(email=ADDRESS, attempts=1, next_attempt_at=lease_end)

    assert run_task(signup).get() == "scheduled", "its redelivered message must not try before the lease ends"
    assert smtp_email.recipients() == []
    wait_for(lambda: run_task(signup).get() == "sent", timeout=10, message="never tried after the lease")
    signup.refresh_from_db()
    assert signup.attempts == 2


@pytest.mark.django_db(transaction=True)
def test_an_attempt_is_leased_for_the_hard_time_limit(smtp_email: SMTPServer, settings) -> None:
    signup = Signup.objects.create(email=ADDRESS)
    smtp_email.release.clear()  # hold the delivery so the lease can be read mid-attempt
    started = timezone.now()

    def run_in_thread() -> None:
        try:
            run_task(signup)
        finally:
            connection.close()

    runner = threading.Thread(target=run_in_thread)

    try:
        runner.start()
        wait_for(smtp_email.data_received.is_set, timeout=10, message="no delivery")
        lease = Signup.objects.get(pk=signup.pk).next_attempt_at
    finally:
        smtp_email.release.set()
        runner.join(10)

    assert lease >= started + timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)


def test_unknown_signup_sends_nothing(smtp_email: SMTPServer) -> None:
    assert send_welcome_email.apply(args=[str(uuid.uuid4())]).get() == "missing"
    assert smtp_email.recipients() == []
