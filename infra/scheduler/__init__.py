"""Celery Beat (exactly one) and the queue-metrics publisher beside it."""
