"""Gauges of the welcome emails, published with the queue metrics (queuemetrics.schema)."""

from django.db import close_old_connections
from django.db.models import Count, Q

from queuemetrics import schema
from signups.models import Signup


def welcome_email_gauges() -> dict[schema.MetricDefinition, float]:
    """Failed welcome emails (alarm on any), and queued ones whose last attempt failed."""
    # The publisher runs for days: a connection broken by a database restart is replaced here, as
    # Django does around each request.
    close_old_connections()
    counts = Signup.objects.aggregate(
        failed=Count("pk", filter=Q(status=Signup.Status.FAILED)),
        retrying=Count("pk", filter=Q(status=Signup.Status.QUEUED, attempts__gt=0)),
    )
    return {
        schema.WELCOME_EMAILS_FAILED: counts["failed"],
        schema.WELCOME_EMAILS_RETRYING: counts["retrying"],
    }
