"""Stamp every published task message with the time it was sent, and measure the tasks workers run.

The publisher reads the header from the oldest waiting message to report how long work has been
waiting: the latency users feel, which a message count alone does not tell. Workers measure each
task's run time and queue wait (queuemetrics.task_stats) for the calibration metrics, and log each
task run's outcome with the image that ran it (queuemetrics.outcomes) for release canaries.
"""

from __future__ import annotations

import time
from typing import Any

from celery.signals import (
    before_task_publish,
    task_failure,
    task_postrun,
    task_prerun,
    task_retry,
    task_success,
    worker_process_shutdown,
)

from queuemetrics import outcomes, task_stats
from queuemetrics.schema import SENT_AT_HEADER

_DISPATCH_UID = "queuemetrics.stamp_sent_at"


def stamp_sent_at(headers: dict[str, Any] | None = None, **_: Any) -> None:
    # Always overwrite: a retried task is a new message and waits anew.
    if headers is not None:
        headers[SENT_AT_HEADER] = time.time()


def connect_signals() -> None:
    before_task_publish.connect(stamp_sent_at, dispatch_uid=_DISPATCH_UID, weak=False)
    task_prerun.connect(task_stats.on_task_prerun, dispatch_uid="queuemetrics.task_started", weak=False)
    task_postrun.connect(task_stats.on_task_postrun, dispatch_uid="queuemetrics.task_finished", weak=False)
    worker_process_shutdown.connect(
        task_stats.on_process_shutdown, dispatch_uid="queuemetrics.process_shutdown", weak=False
    )
    task_success.connect(outcomes.on_task_success, dispatch_uid="queuemetrics.task_success", weak=False)
    task_failure.connect(outcomes.on_task_failure, dispatch_uid="queuemetrics.task_failure", weak=False)
    task_retry.connect(outcomes.on_task_retry, dispatch_uid="queuemetrics.task_retry", weak=False)
