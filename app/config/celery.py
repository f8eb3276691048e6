"""The Celery app of every role: `celery --app config worker|beat`.

All Celery settings are in Django settings under the CELERY_ prefix (config/settings/base.py).
"""

import os

from celery import Celery

from core.celery_lifecycle import WorkerHeartbeat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.steps["worker"].add(WorkerHeartbeat)
app.autodiscover_tasks()
