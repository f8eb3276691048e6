"""`manage.py failed_welcome_emails`: list the welcome emails that failed for good, and re-send them.

A welcome email fails for good when the mail server rejects it permanently (a 5xx reply to the
message) or its retry window ends (WELCOME_EMAIL_RETRY_WINDOW_SECONDS). The WelcomeEmailsFailed
metric counts them. Once the cause is fixed (a mail setup, an outage longer than the window),
`--resend` gives each a new retry window and publishes it again; a signup that was never accepted
by a mail server keeps its Message-ID, so a resend cannot look like a second, different email.

The output goes to the logs of a one-off task, so addresses are shown redacted.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from core.logging import redact_emails
from signups.models import Signup
from signups.tasks import enqueue_welcome_email


class Command(BaseCommand):
    help = "List the signups whose welcome email failed for good; with --resend, send them again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("ids", nargs="*", help="only these signup ids (default: every failed one)")
        parser.add_argument("--resend", action="store_true", help="queue them again with a new retry window")
        parser.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")

    def handle(self, *args: Any, ids: list[str], resend: bool, limit: int, **options: Any) -> None:
        failed = Signup.objects.filter(status=Signup.Status.FAILED).order_by("created_at")
        if ids:
            failed = failed.filter(pk__in=ids)
        signups = list(failed[:limit])
        for signup in signups:
            self.stdout.write(
                f"{signup.pk}  created {signup.created_at:%Y-%m-%d %H:%M}  attempts {signup.attempts}  "
                f"{redact_emails(signup.last_error)[:200]}"
            )
        if not resend:
            self.stdout.write(f"{len(signups)} failed welcome email(s); --resend sends them again")
            return
        window = timedelta(seconds=settings.WELCOME_EMAIL_RETRY_WINDOW_SECONDS)
        published = 0
        for signup in signups:
            # Only a signup still failed is reset: a concurrent resend or a change by hand wins.
            reset = Signup.objects.filter(pk=signup.pk, status=Signup.Status.FAILED).update(
                status=Signup.Status.QUEUED,
                next_attempt_at=None,
                enqueued_at=None,
                retry_until=timezone.now() + window,
                updated_at=timezone.now(),
            )
            published += bool(reset) and enqueue_welcome_email(signup.pk)
        self.stdout.write(
            f"{len(signups)} queued again, {published} published now; the sweep publishes the rest"
        )
