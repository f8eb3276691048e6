"""Local profile for `honcho start`: local PostgreSQL and Redis, emails printed to the log."""

import os

# Defaults must be in place before base.py reads the environment.
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/djcelery")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
os.environ.setdefault("DJANGO_SECRET_KEY", "local-only-not-secret")
os.environ.setdefault("DJANGO_DEBUG", "true")

from .base import *  # noqa: F403

# Serve static files straight from the apps (no collectstatic needed on a laptop).
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
