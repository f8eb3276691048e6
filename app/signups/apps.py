from django.apps import AppConfig


class SignupsConfig(AppConfig):
    """The example domain: people sign up and get a welcome email from a Celery worker."""

    name = "signups"
