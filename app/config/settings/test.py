"""Test profile: the local PostgreSQL and Redis unless DATABASE_URL / REDIS_URL say otherwise."""

import os

# Defaults must be in place before base.py reads the environment.
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-not-secret")

from .base import *  # noqa: F403

EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tests do not run collectstatic: no manifest, and no collected directory for whitenoise to read.
STATIC_ROOT = None
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# One client address (the test client's) posts every signup of the suite; the tests of the rate
# limit turn it on.
RATELIMIT_ENABLE = False
SIGNUP_PROCESS_RATE_LIMIT = 100_000
