"""Rules between settings that every process checks at start (config/settings/base.py calls them).

They run on import of the settings, not as Django system checks, because gunicorn and Celery never
run `manage.py check`: a wrong combination must stop web, worker and Beat alike, naming the
variables. Every problem is reported at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

# django-ratelimit's rate format: a count per period, e.g. 10/m, 100/h, 5/30s.
RATE_PATTERN = re.compile(r"^\d+/\d*[smhd]$")


def timing_problems(s: Mapping[str, Any]) -> list[str]:
    soft, hard = s["CELERY_TASK_SOFT_TIME_LIMIT"], s["CELERY_TASK_TIME_LIMIT"]
    visibility, email_timeout = s["CELERY_VISIBILITY_TIMEOUT"], s["EMAIL_TIMEOUT"]
    margin, stop_timeout = s["CELERY_WORKER_COLD_SHUTDOWN_MARGIN"], s["CELERY_WORKER_STOP_TIMEOUT"]
    problems = []
    if not soft < hard < visibility:
        problems.append(
            "Celery time limits must satisfy CELERY_TASK_SOFT_TIME_LIMIT < CELERY_TASK_TIME_LIMIT < "
            f"CELERY_VISIBILITY_TIMEOUT, got {soft} / {hard} / {visibility}: a task still running after "
            "the visibility timeout is delivered a second time"
        )
    if not hard - soft > email_timeout:
        problems.append(
            f"CELERY_TASK_TIME_LIMIT - CELERY_TASK_SOFT_TIME_LIMIT ({hard - soft}) must exceed EMAIL_TIMEOUT "
            f"({email_timeout}): a delivery stopped by the soft limit still says QUIT to the mail server and "
            "records its failure, and the hard limit must not kill it while it does"
        )
    if email_timeout >= margin:
        problems.append(
            f"EMAIL_TIMEOUT ({email_timeout}) must be below {margin} seconds, or a worker stopping during a "
            "delivery can overrun the ECS stop timeout"
        )
    if stop_timeout <= margin:
        problems.append(f"CELERY_WORKER_STOP_TIMEOUT must be more than {margin} seconds, got {stop_timeout}")
    if not s["WELCOME_EMAIL_DATABASE_RETRY_DELAY"] < visibility:
        problems.append(
            f"CELERY_VISIBILITY_TIMEOUT ({visibility}) must exceed the database retry delay "
            f"({s['WELCOME_EMAIL_DATABASE_RETRY_DELAY']}): a delayed retry is held by a worker and one "
            "longer than the visibility timeout is delivered twice"
        )
    return problems


def retry_problems(s: Mapping[str, Any]) -> list[str]:
    backoff, longest = s["WELCOME_EMAIL_RETRY_BACKOFF_SECONDS"], s["WELCOME_EMAIL_RETRY_MAX_DELAY_SECONDS"]
    window = s["WELCOME_EMAIL_RETRY_WINDOW_SECONDS"]
    problems = []
    if not 0 < backoff <= longest <= window:
        problems.append(
            "welcome-email retries must satisfy 0 < WELCOME_EMAIL_RETRY_BACKOFF_SECONDS <= "
            "WELCOME_EMAIL_RETRY_MAX_DELAY_SECONDS <= WELCOME_EMAIL_RETRY_WINDOW_SECONDS, got "
            f"{backoff} / {longest} / {window}"
        )
    for name in ("SIGNUP_SWEEP_SECONDS", "SIGNUP_REQUEUE_AFTER_SECONDS"):
        if s[name] <= 0:
            problems.append(f"{name} must be a positive number of seconds, got {s[name]}")
    for name in ("SIGNUP_RATE_LIMIT", "SIGNUP_PREFIX_RATE_LIMIT"):
        if not RATE_PATTERN.match(s[name]):
            problems.append(f"{name} must be a count per period such as 10/m or 100/h, got {s[name]!r}")
    process_limit = s["SIGNUP_PROCESS_RATE_LIMIT"]
    if process_limit <= 0:
        problems.append(f"SIGNUP_PROCESS_RATE_LIMIT must be a positive count, got {process_limit}")
    return problems


def check_settings(settings: Mapping[str, Any]) -> None:
    """Raise ImproperlyConfigured listing every broken rule."""
    problems = timing_problems(settings) + retry_problems(settings)
    if problems:
        raise ImproperlyConfigured("Invalid settings:\n  - " + "\n  - ".join(problems))
