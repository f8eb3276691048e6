from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Platform concerns: health checks, request ids, JSON logs, Celery process lifecycle."""

    name = "core"
