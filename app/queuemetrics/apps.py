from django.apps import AppConfig


class QueuemetricsConfig(AppConfig):
    name = "queuemetrics"
    verbose_name = "Celery queue metrics"

    def ready(self) -> None:
        from queuemetrics.signals import connect_signals

        connect_signals()
