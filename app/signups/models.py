"""Signups and the record of every periodic run."""

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Max
from django.db.models.functions import Lower


class Signup(models.Model):
    """Someone who signed up; a worker sends them one welcome email."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        SENT = "sent"
        FAILED = "failed"

    # Random ids: signups cannot be counted or enumerated through the API.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Where the welcome email goes (signups.mailbox.delivery_address).
    email = models.EmailField()
    # The mailbox identity, the same for every spelling of one address (signups.mailbox.identity).
    # Null only in rows written before it existed; the next release makes it required.
    email_canonical = models.CharField(max_length=320, null=True, blank=True, editable=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    # Delivery attempts of the welcome-email task, each recorded before it starts (killed runs count too).
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # When the welcome-email message was handed to the broker; null while no message is out, e.g.
    # the broker refused it, or an attempt failed and the next one waits for `next_attempt_at`.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    # When the sweep publishes the next attempt (null: none planned yet).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # End of the retry window (null: WELCOME_EMAIL_RETRY_WINDOW_SECONDS after created_at).
    retry_until = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # Kept while the previous release may still insert rows without email_canonical.
            models.UniqueConstraint(Lower("email"), name="signup_email_unique_ci"),
            models.UniqueConstraint(fields=["email_canonical"], name="signup_mailbox_unique"),
        ]
        indexes = [
            models.Index(fields=["status", "enqueued_at"], name="signup_status_enqueued"),
            models.Index(fields=["status", "next_attempt_at"], name="signup_status_next_attempt"),
        ]

    def __str__(self) -> str:
        return f"signup {self.pk} ({self.status})"

    def retry_deadline(self) -> datetime:
        window = timedelta(seconds=settings.WELCOME_EMAIL_RETRY_WINDOW_SECONDS)
        return self.retry_until or self.created_at + window

    def is_due(self, now: datetime) -> bool:
        return self.next_attempt_at is None or self.next_attempt_at <= now


class PeriodicRunManager(models.Manager["PeriodicRun"]):
    # Concurrent firings of one slot race for the next firing number; the loser counts again.
    MAX_NUMBERING_ATTEMPTS = 5

    def record(self, task_name: str, scheduled_for: datetime, task_id: str, worker: str) -> "PeriodicRun":
        """Store one run; a message delivered again returns the run it already recorded."""
        for _ in range(self.MAX_NUMBERING_ATTEMPTS):
            existing = self.filter(task_id=task_id).first()
            if existing is not None:
                return existing
            slot = self.filter(task_name=task_name, scheduled_for=scheduled_for)
            firing = (slot.aggregate(last=Max("firing"))["last"] or 0) + 1
            try:
                with transaction.atomic():
                    return self.create(
                        task_name=task_name,
                        scheduled_for=scheduled_for,
                        firing=firing,
                        task_id=task_id,
                        worker=worker,
                    )
            except IntegrityError:
                continue
        raise RuntimeError(f"could not record a run of {task_name} for {scheduled_for}")


class PeriodicRun(models.Model):
    """One execution of a periodic task, for the occurrence of its schedule it was sent for.

    A Beat that fires an occurrence twice leaves two rows with the same (task_name, scheduled_for):
    the second has `firing` 2. Double firings: PeriodicRun.objects.filter(firing__gt=1).
    """

    task_name = models.CharField(max_length=200)
    scheduled_for = models.DateTimeField()
    firing = models.PositiveIntegerField(default=1)
    # A message delivered again (after a worker crash) is the same firing, not a new one.
    task_id = models.CharField(max_length=255, unique=True)
    worker = models.CharField(max_length=255, blank=True)
    ran_at = models.DateTimeField(auto_now_add=True)

    objects = PeriodicRunManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["task_name", "scheduled_for", "firing"], name="periodic_run_slot_firing_unique"
            ),
        ]
        ordering = ["-scheduled_for", "firing"]

    def __str__(self) -> str:
        return f"{self.task_name} @ {self.scheduled_for:%Y-%m-%d %H:%M:%S} #{self.firing}"
