"""A bare Celery app with one task that does nothing: the broker and Celery ceiling.

`BENCH_CELERY_SETTINGS=shipped` applies the delivery settings the product ships (late ack,
reject on worker lost, prefetch 1); `defaults` leaves Celery's defaults. No result backend.
The broker is Celery's own environment variable:

    CELERY_BROKER_URL=redis://... celery --app bench.noop_app worker --queues noop --concurrency 2
"""

import os

from celery import Celery

QUEUE = "noop"
SHIPPED_DELIVERY = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
}

# Not the current app: importing this module (the benchmark does) must not redirect the shared
# tasks of a Django project in the same process to this app's broker.
app = Celery("noop", set_as_current=False)
app.conf.task_default_queue = QUEUE
if os.environ.get("BENCH_CELERY_SETTINGS", "shipped") == "shipped":
    app.conf.update(SHIPPED_DELIVERY)


@app.task(name="noop")
def noop() -> None:
    """Nothing: what is measured is fetching, acknowledging and bookkeeping."""
