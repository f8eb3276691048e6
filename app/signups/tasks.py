"""Celery tasks of the signups app, and the one way to enqueue a welcome email."""

import logging
import smtplib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.utils.time import get_exponential_backoff_interval
from django import db
from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from kombu.exceptions import OperationalError

from core.beat import SCHEDULED_FOR_HEADER
from signups.models import PeriodicRun, Signup

logger = logging.getLogger(__name__)

# Failures of the mail server or the network; worth another attempt later.
DELIVERY_ERRORS = (smtplib.SMTPException, OSError)
# The database is unreachable or its connection broke (restart, failover); the task waits it out.
DATABASE_ERRORS = (db.OperationalError, db.InterfaceError)
MAX_DELIVERY_ATTEMPTS = settings.WELCOME_EMAIL_MAX_DELIVERY_ATTEMPTS
MAX_DATABASE_RETRIES = settings.WELCOME_EMAIL_MAX_DATABASE_RETRIES
PUBLISH_RETRY_POLICY = {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.4, "interval_max": 1.0}
REQUEUE_BATCH_SIZE = 500


def enqueue_welcome_email(signup: Signup) -> bool:
    """Publish the welcome email of a committed signup; False if the broker is unavailable."""
    try:
        send_welcome_email.apply_async((str(signup.pk),), retry=True, retry_policy=PUBLISH_RETRY_POLICY)
    except OperationalError:
        logger.warning("broker unavailable, signup %s stays queued for the requeue sweep", signup.pk)
        return False
    Signup.objects.filter(pk=signup.pk).update(enqueued_at=timezone.now())
    return True


def welcome_message(signup: Signup) -> EmailMessage:
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2] or "localhost"
    return EmailMessage(
        subject="Welcome!",
        body="Thanks for signing up. This message was sent by a Celery worker.",
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[signup.email],
        # The same Message-ID on every attempt lets mail systems drop a copy resent after a crash.
        headers={"Message-ID": f"<welcome-{signup.pk}@{domain}>"},
    )


def delivery_retry_delay(attempts: int) -> int:
    """Seconds before the next delivery attempt: 2, 4, 8 s after the 1st, 2nd, 3rd, with full jitter."""
    return get_exponential_backoff_interval(
        factor=settings.WELCOME_EMAIL_RETRY_BACKOFF,
        retries=attempts - 1,
        maximum=settings.WELCOME_EMAIL_LONGEST_DELIVERY_DELAY,
        full_jitter=True,
    )


class DeliveryFailed(Exception):
    """A delivery attempt failed and is recorded; `retry` says whether attempts are left."""

    def __init__(self, cause: BaseException, attempts: int, retry: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.attempts = attempts
        self.retry = retry


@contextmanager
def smtp_connection() -> Iterator[BaseEmailBackend]:
    """A mail server connection that the block opens; closed (QUIT) when the block ends.

    Whatever the block commits is committed before the server's goodbye, and a failed goodbye
    changes nothing.
    """
    connection = get_connection()
    try:
        yield connection
    finally:
        with suppress(*DELIVERY_ERRORS):
            connection.close()


@shared_task(
    bind=True,
    # Bounds every retry together; each kind is bounded on its own below.
    max_retries=MAX_DELIVERY_ATTEMPTS + MAX_DATABASE_RETRIES,
    # A task killed at its hard time limit goes back to the queue instead of being acknowledged;
    # the `attempts` column ends a message that keeps getting killed.
    acks_on_failure_or_timeout=False,
)
def send_welcome_email(self, signup_id: str, database_retries: int = 0) -> str:
    """Send the welcome email of one signup, exactly once however often this message runs.

    Retries failed deliveries (up to MAX_DELIVERY_ATTEMPTS in all, counted in the signup's
    `attempts`) and database outages (MAX_DATABASE_RETRIES, not counted as attempts).
    """
    try:
        return deliver_welcome_email(signup_id)
    except DeliveryFailed as failure:
        if not failure.retry:
            raise failure.cause from None
        raise self.retry(exc=failure.cause, countdown=delivery_retry_delay(failure.attempts)) from None
    except DATABASE_ERRORS as exc:
        if database_retries >= MAX_DATABASE_RETRIES:
            # The message ends here; requeue_stale_signups publishes the signup again later.
            raise
        logger.warning("database unavailable for signup %s, retrying: %s", signup_id, exc)
        raise self.retry(
            exc=exc,
            countdown=settings.WELCOME_EMAIL_DATABASE_RETRY_DELAY,
            kwargs={"database_retries": database_retries + 1},
        ) from None
    except SoftTimeLimitExceeded as exc:
        # Stopped outside the delivery itself, e.g. waiting for the signup's row lock.
        raise self.retry(exc=exc, countdown=delivery_retry_delay(1)) from None


def deliver_welcome_email(signup_id: str) -> str:
    """Record a delivery attempt, then deliver unless the signup is no longer `queued`.

    The attempt is committed before the delivery, so a message whose every run is killed (hard
    time limit, out of memory) still ends `failed` after MAX_DELIVERY_ATTEMPTS. The delivery holds
    the signup's row lock and is sent only while the row is `queued`: a duplicate delivery
    (redelivery after a crash, a second message, a concurrent run) waits for the lock, then finds
    `sent` and does nothing.
    """
    attempt_recorded = Signup.objects.filter(
        pk=signup_id, status=Signup.Status.QUEUED, attempts__lt=MAX_DELIVERY_ATTEMPTS
    ).update(attempts=F("attempts") + 1, updated_at=timezone.now())

    with smtp_connection() as smtp, transaction.atomic():
        signup = Signup.objects.select_for_update().filter(pk=signup_id).first()
        if signup is None:
            logger.warning("signup %s does not exist, nothing to send", signup_id)
            return "missing"
        if signup.status != Signup.Status.QUEUED:
            return signup.status
        if not attempt_recorded:  # still queued: earlier runs used every attempt and never finished
            logger.error("giving up on signup %s after %s attempts", signup.pk, signup.attempts)
            signup.status = Signup.Status.FAILED
            signup.save(update_fields=["status", "updated_at"])
            return signup.status
        try:
            smtp.open()  # opened here, so that send_messages leaves it open until the commit
            smtp.send_messages([welcome_message(signup)])
        except (*DELIVERY_ERRORS, SoftTimeLimitExceeded) as exc:
            failure = DeliveryFailed(exc, signup.attempts, retry=signup.attempts < MAX_DELIVERY_ATTEMPTS)
            signup.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            if not failure.retry:
                signup.status = Signup.Status.FAILED
                logger.error("giving up on signup %s after %s attempts", signup.pk, signup.attempts)
            signup.save(update_fields=["status", "last_error", "updated_at"])
        else:
            # Committed as soon as the server accepted the message, before QUIT: only a crash
            # between the acceptance and this commit sends the email again (same Message-ID).
            logger.info("welcome email sent for signup %s", signup.pk)
            signup.status = Signup.Status.SENT
            signup.sent_at = timezone.now()
            signup.last_error = ""
            signup.save(update_fields=["status", "last_error", "sent_at", "updated_at"])
            return signup.status
    # Raised after the commit, so the failed attempt stays recorded.
    raise failure


@shared_task
def requeue_stale_signups() -> int:
    """Publish welcome emails that never reached the broker, or whose message was lost."""
    now = timezone.now()
    never_enqueued = Q(
        enqueued_at__isnull=True,
        created_at__lt=now - timedelta(seconds=settings.SIGNUP_REQUEUE_AFTER_SECONDS),
    )
    # Redis replication is asynchronous: a failover can lose a message that was accepted.
    message_lost = Q(
        enqueued_at__lt=now
        - timedelta(seconds=settings.CELERY_VISIBILITY_TIMEOUT + settings.SIGNUP_REQUEUE_AFTER_SECONDS)
    )
    stale = Signup.objects.filter(never_enqueued | message_lost, status=Signup.Status.QUEUED)
    requeued = sum(enqueue_welcome_email(signup) for signup in stale[:REQUEUE_BATCH_SIZE])
    if requeued:
        logger.info("requeued %s signups", requeued)
    return requeued


@shared_task(bind=True)
def record_heartbeat(self) -> int:
    """Record this run and the schedule occurrence it belongs to; returns its firing number."""
    stamped = self.request.get(SCHEDULED_FOR_HEADER)
    scheduled_for = datetime.fromisoformat(stamped) if stamped else timezone.now()
    run = PeriodicRun.objects.record(
        task_name=self.name,
        scheduled_for=scheduled_for,
        task_id=self.request.id,
        worker=self.request.hostname or "",
    )
    if run.firing > 1:
        logger.warning("%s fired %s times for %s", self.name, run.firing, scheduled_for.isoformat())
    return run.firing
