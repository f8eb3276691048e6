"""Celery tasks of the signups app, and the one way to enqueue a welcome email."""

import logging
import random
import smtplib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta

import redis
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django import db
from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from core.app_redis import redis_client
from core.beat import SCHEDULED_FOR_HEADER
from core.broker import publisher
from queuemetrics.publisher import BrokerLayout, read_queues
from signups.models import PeriodicRun, Signup

logger = logging.getLogger(__name__)

# Failures of the mail server or the network: retried, unless the server refused for good.
DELIVERY_ERRORS = (smtplib.SMTPException, OSError)
# The database is unreachable or its connection broke (restart, failover); the task waits it out.
DATABASE_ERRORS = (db.OperationalError, db.InterfaceError)
MAX_DATABASE_RETRIES = settings.WELCOME_EMAIL_MAX_DATABASE_RETRIES
REQUEUE_BATCH_SIZE = 500
# A signup's `enqueued_at` is written just before its message's `sent_at` (a publish takes under 2 s,
# core.broker), by clocks of containers that differ by less than the rest.
PUBLISH_MARGIN = timedelta(seconds=5)
# Where the workers' transport keeps the queues (what the queue-metrics publisher reads too).
BROKER_LAYOUT = BrokerLayout.from_transport_options(settings.CELERY_BROKER_TRANSPORT_OPTIONS)
# Doublings before the backoff reaches any sensible cap; bounds the arithmetic, not the delay.
MAX_BACKOFF_DOUBLINGS = 30


def enqueue_welcome_email(signup_id: object) -> bool:
    """Publish the welcome email of a committed signup; False if the broker did not take it.

    `enqueued_at` is written before the publish, because a fast worker may record its attempt
    (which clears it) before this process could write it afterwards; a refused publish clears it.
    """
    enqueued_at = timezone.now()
    Signup.objects.filter(pk=signup_id).update(enqueued_at=enqueued_at)
    if publisher.publish(send_welcome_email, (str(signup_id),)):
        return True
    Signup.objects.filter(pk=signup_id, enqueued_at=enqueued_at).update(enqueued_at=None)
    logger.warning("signup %s stays queued for the sweep", signup_id)
    return False


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


def retry_delay(attempts: int) -> timedelta:
    """Wait after the `attempts`-th failed attempt: capped exponential backoff with equal jitter,
    between half and all of min(max delay, backoff x 2^(attempts - 1))."""
    doublings = min(max(attempts - 1, 0), MAX_BACKOFF_DOUBLINGS)
    backoff = settings.WELCOME_EMAIL_RETRY_BACKOFF_SECONDS * 2**doublings
    ceiling = min(settings.WELCOME_EMAIL_RETRY_MAX_DELAY_SECONDS, backoff)
    return timedelta(seconds=ceiling * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not a secret


def is_permanent_rejection(exc: BaseException) -> bool:
    """A 5xx reply to this message: the recipient or the message is refused for good (RFC 5321).

    5xx replies to the session itself (greeting, authentication, our sender address) are a fault of
    the mail setup, not of this signup, and are retried like an outage until the window ends.
    """
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return bool(exc.recipients) and all(500 <= code < 600 for code, _ in exc.recipients.values())
    return isinstance(exc, smtplib.SMTPDataError) and 500 <= exc.smtp_code < 600


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
        with suppress(*DELIVERY_ERRORS, SoftTimeLimitExceeded):
            connection.close()


@shared_task(
    bind=True,
    max_retries=MAX_DATABASE_RETRIES,
    # A task killed at its hard time limit goes back to the queue instead of being acknowledged;
    # the attempt it recorded makes the next run wait for its retry time.
    acks_on_failure_or_timeout=False,
)
def send_welcome_email(self, signup_id: str, database_retries: int = 0) -> str:
    """Make one delivery attempt of a signup's welcome email, if one is due; never sends twice.

    Returns the signup's status afterwards, or why nothing was attempted ("scheduled": the next
    attempt is not due yet, "missing"). A failed attempt is recorded with the time of the next one,
    which the sweep (requeue_stale_signups) publishes: long waits never sit in the broker.
    """
    try:
        return deliver_welcome_email(signup_id)
    except (*DATABASE_ERRORS, SoftTimeLimitExceeded) as exc:
        # The database is unreachable (restart, RDS failover), or the soft time limit stopped the task
        # outside the delivery (waiting for the row lock): wait briefly and run again. These short
        # countdowns are not delivery attempts.
        if database_retries >= MAX_DATABASE_RETRIES:
            raise  # the message ends here; the sweep publishes the signup again later
        logger.warning("signup %s: %s, running again shortly", signup_id, type(exc).__name__)
        raise self.retry(
            countdown=settings.WELCOME_EMAIL_DATABASE_RETRY_DELAY,
            kwargs={"database_retries": database_retries + 1},
        ) from None


def claim_attempt(signup_id: str, now: datetime) -> str | None:
    """Record the next delivery attempt of a due, queued signup. None if recorded, else why not.

    The attempt is committed before the delivery with a lease: the next attempt is due no earlier
    than the hard time limit plus a backoff. A run killed mid-attempt (hard time limit, out of
    memory, SIGKILL) leaves that time behind, so its redelivered message or the sweep tries again
    then; a message that keeps killing its worker backs off like a failing mail server. Two runs
    of one signup compare-and-set `attempts`, so only one of them attempts.
    """
    signup = Signup.objects.filter(pk=signup_id).first()
    if signup is None:
        logger.warning("signup %s does not exist, nothing to send", signup_id)
        return "missing"
    if signup.status != Signup.Status.QUEUED:
        return signup.status
    if not signup.is_due(now):
        return "scheduled"
    attempts = signup.attempts + 1
    lease = timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT) + retry_delay(attempts)
    unchanged = Signup.objects.filter(pk=signup_id, status=Signup.Status.QUEUED, attempts=signup.attempts)
    recorded = unchanged.update(
        attempts=attempts, next_attempt_at=now + lease, enqueued_at=None, updated_at=now
    )
    return None if recorded else "scheduled"


def deliver_welcome_email(signup_id: str) -> str:
    """Claim an attempt, then deliver under the signup's row lock and record the outcome."""
    not_attempted = claim_attempt(signup_id, timezone.now())
    if not_attempted:
        return not_attempted
    with smtp_connection() as smtp, transaction.atomic():
        signup = Signup.objects.select_for_update().get(pk=signup_id)
        if signup.status != Signup.Status.QUEUED:  # changed by hand meanwhile
            return signup.status
        try:
            smtp.open()  # opened here, so that send_messages leaves it open until the commit
            smtp.send_messages([welcome_message(signup)])
        except (*DELIVERY_ERRORS, SoftTimeLimitExceeded) as exc:
            record_failure(signup, exc)
        else:
            # Committed as soon as the server accepted the message, before QUIT: only a crash
            # between the acceptance and this commit sends the email again (same Message-ID).
            logger.info("welcome email sent for signup %s", signup.pk)
            signup.status = Signup.Status.SENT
            signup.sent_at = timezone.now()
            signup.next_attempt_at = None
            signup.last_error = ""
            signup.save(update_fields=["status", "last_error", "sent_at", "next_attempt_at", "updated_at"])
        return signup.status


def record_failure(signup: Signup, exc: BaseException) -> None:
    """Store a failed attempt: the signup fails for good, or its next attempt gets a time.

    Only the exception's type is logged: mail servers quote the recipient's address in replies.
    """
    now = timezone.now()
    deadline = signup.retry_deadline()
    signup.last_error = f"{type(exc).__name__}: {exc}"[:2000]
    if is_permanent_rejection(exc) or now >= deadline:
        signup.status = Signup.Status.FAILED
        signup.next_attempt_at = None
        why = "rejected permanently" if is_permanent_rejection(exc) else "retry window over"
        logger.error("welcome email for signup %s failed after %s attempt(s): %s (%s)",
                     signup.pk, signup.attempts, why, type(exc).__name__)
    else:
        signup.next_attempt_at = min(now + retry_delay(signup.attempts), deadline)
        logger.warning("welcome email for signup %s: attempt %s failed (%s), next at %s",
                       signup.pk, signup.attempts, type(exc).__name__, signup.next_attempt_at.isoformat())
    signup.save(update_fields=["status", "last_error", "next_attempt_at", "updated_at"])


@shared_task
def requeue_stale_signups() -> int:
    """Publish every welcome email that is due and has no message out.

    - a retry whose `next_attempt_at` has come (failed attempts, and killed ones after their lease);
    - a signup the broker refused at creation, once SIGNUP_REQUEUE_AFTER_SECONDS old;
    - a message lost after it was accepted: popped by a worker that died before recording it in
      `unacked`, or while Redis refused that write (OOM, READONLY), or dropped by a failover (Redis
      replication is asynchronous). See `lost_message_cutoff`.
    Stops at the first refused publish: the broker is down, the next run tries again.
    """
    now = timezone.now()
    requeue_after = timedelta(seconds=settings.SIGNUP_REQUEUE_AFTER_SECONDS)
    retry_due = Q(next_attempt_at__lte=now)
    refused_at_creation = Q(next_attempt_at__isnull=True, created_at__lt=now - requeue_after)
    no_message_out = Q(enqueued_at__isnull=True) & (retry_due | refused_at_creation)
    message_lost = Q(enqueued_at__lt=lost_message_cutoff(now))
    due = Signup.objects.filter(no_message_out | message_lost, status=Signup.Status.QUEUED)
    due_ids = due.order_by(F("next_attempt_at").asc(nulls_first=True)).values_list("pk", flat=True)
    requeued = 0
    for signup_id in due_ids[:REQUEUE_BATCH_SIZE]:
        if not enqueue_welcome_email(signup_id):
            break
        requeued += 1
    if requeued:
        logger.info("requeued %s signups", requeued)
    return requeued


def lost_message_cutoff(now: datetime) -> datetime:
    """Signups enqueued before this have lost their message (a run would have cleared `enqueued_at`).

    A message that is neither waiting nor running is lost. The queue is first in, first out: when
    its oldest waiting message was published after a signup was enqueued (or nothing waits), that
    signup's message is not waiting. Past the grace of a hard time limit plus
    SIGNUP_REQUEUE_AFTER_SECONDS it is not about to start on a busy worker either: republishing it
    then costs at most a second message that finds the attempt claimed. This finds a lost message
    within minutes instead of after the visibility timeout (an hour), and also brings back, sooner,
    the message of a worker that died. Without the broker's answer only the visibility timeout
    plus that delay counts.
    """
    requeue_after = timedelta(seconds=settings.SIGNUP_REQUEUE_AFTER_SECONDS)
    fallback = now - timedelta(seconds=settings.CELERY_VISIBILITY_TIMEOUT) - requeue_after
    try:
        waiting = read_queues(redis_client(), BROKER_LAYOUT, [settings.CELERY_EMAIL_QUEUE_NAME])
    except redis.RedisError as error:
        logger.warning("sweep: cannot read the email queue (%s); lost messages wait longer", error)
        return fallback
    reading = waiting[settings.CELERY_EMAIL_QUEUE_NAME]
    if reading.waiting and reading.oldest_sent_at is None:
        return fallback  # a waiting message without a publish time: its age is unknown
    grace = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT) - requeue_after
    if not reading.waiting or reading.oldest_sent_at is None:
        return grace
    oldest_waiting = datetime.fromtimestamp(reading.oldest_sent_at, UTC) - PUBLISH_MARGIN
    return max(fallback, min(grace, oldest_waiting))


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
