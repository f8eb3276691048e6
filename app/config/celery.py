"""The Celery app of every role: `celery --app config worker|beat`.

All Celery settings are in Django settings under the CELERY_ prefix (config/settings/base.py).
"""

import os

from celery import Celery
from django.conf import settings

from core.celery_lifecycle import JsonStartupBeat, JsonStartupWorker, WorkerHeartbeat
from core.task_protection import TaskProtection

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

# Runs Beat sends for a schedule entry keep its overlap policy and record their outcome.
app = Celery("config", task_cls="core.scheduled_task:ScheduledTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
# celery-redbeat checks for its settings under their plain names and, not finding them, would
# fall back to the broker's options (and warn).
app.conf.update(
    {
        name.removeprefix("CELERY_").lower(): getattr(settings, name)
        for name in dir(settings)
        if name.startswith("CELERY_REDBEAT_")
    }
)
app.steps["worker"].add(WorkerHeartbeat)
# On ECS, busy workers are protected from scale-in and deployments (core.task_protection).
app.steps["worker"].add(TaskProtection)
# Worker and Beat announce themselves in JSON like every other line they print.
app.Worker = app.subclass_with_self(JsonStartupWorker)
app.Beat = app.subclass_with_self(JsonStartupBeat)
app.autodiscover_tasks()
