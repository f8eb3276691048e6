"""The production settings with Celery's own defaults for delivery, for comparison only.

Celery's defaults acknowledge a message when its task starts (early ack) and let each pool
process reserve 4 messages. The shipped settings acknowledge at the end, put back the tasks of a
dead process and reserve 1 (see config/settings/base.py). Nothing else differs.
"""

from config.settings.production import *  # noqa: F403

CELERY_TASK_ACKS_LATE = False
CELERY_TASK_REJECT_ON_WORKER_LOST = None  # type: ignore[assignment]  # Celery's own default
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
