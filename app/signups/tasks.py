"""Celery tasks of the signups app, and the one way to enqueue a welcome email."""

import logging
import smtplib
from datetime import datetime, timedelta

from celery import shared_task
from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from kombu.exceptions import OperationalError

from core.beat import SCHEDULED_FOR_HEADER
from signups.models import PeriodicRun, Signup

logger = logging.getLogger(__name__)

# Failures of the mail server or the network; worth another attempt later.
DELIVERY_ERRORS = (smtplib.SMTPException, OSError)
MAX_DELIVERY_RETRIES = 3
# A web request retries the publish briefly (about 2 s, e.g. a Redis failover), then gives up:
# the signup stays `queued` without `enqueued_at` and requeue_stale_signups publishes it later.
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


@shared_task(
    bind=True,
    autoretry_for=DELIVERY_ERRORS,
    max_retries=MAX_DELIVERY_RETRIES,
    retry_backoff=2,
    retry_backoff_max=settings.CELERY_RETRY_BACKOFF_MAX,
    retry_jitter=True,
)
def send_welcome_email(self, signup_id: str) -> str:
    """Send the welcome email of one signup, exactly once however often this message runs.

    The signup row is locked for the whole attempt and the email is sent only while it is
    `queued`: a duplicate delivery (redelivery after a crash, a second message, a concurrent run)
    waits for the lock, then finds `sent` and does nothing.
    """
    with transaction.atomic():
        signup = Signup.objects.select_for_update().filter(pk=signup_id).first()
        if signup is None:
            logger.warning("signup %s does not exist, nothing to send", signup_id)
            return "missing"
        if signup.status != Signup.Status.QUEUED:
            return signup.status
        signup.attempts += 1
        delivery_error: Exception | None = None
        try:
            welcome_message(signup).send()
        except DELIVERY_ERRORS as exc:
            delivery_error = exc
            signup.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            if self.request.retries >= self.max_retries:
                signup.status = Signup.Status.FAILED
                logger.error("giving up on signup %s after %s attempts", signup.pk, signup.attempts)
        else:
            logger.info("welcome email sent for signup %s", signup.pk)
            signup.status = Signup.Status.SENT
            signup.sent_at = timezone.now()
            signup.last_error = ""
        signup.save(update_fields=["status", "attempts", "last_error", "sent_at", "updated_at"])
    # Raised after the commit, so the attempt stays recorded; autoretry_for schedules the next one.
    if delivery_error is not None:
        raise delivery_error
    return signup.status


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
