"""Stamp every published task message with the time it was sent.

The publisher reads this header from the oldest waiting message to report how long work has
been waiting: the latency users feel, which a message count alone does not tell.
"""

from __future__ import annotations

import time
from typing import Any

from celery.signals import before_task_publish

from queuemetrics.schema import SENT_AT_HEADER

_DISPATCH_UID = "queuemetrics.stamp_sent_at"


def stamp_sent_at(headers: dict[str, Any] | None = None, **_: Any) -> None:
    # Always overwrite: a retried task is a new message and waits anew.
    if headers is not None:
        headers[SENT_AT_HEADER] = time.time()


def connect_signals() -> None:
    before_task_publish.connect(stamp_sent_at, dispatch_uid=_DISPATCH_UID, weak=False)
