"""One JSON log line per task run a worker finishes, with the image that ran it.

A release canary (infra/workers/canary.py) reads these lines from the canary worker's log: how
many task runs of the new image succeeded, failed or asked for a retry, and why the failures
failed. The line is written from Celery's task signals in the pool process that ran the task:

    {"event": "task_outcome", "outcome": "failure", "task": "signups.tasks.send_welcome_email",
     "task_id": "...", "image_digest": "sha256:...", "error": "OperationalError: ...", ...}

`parse_outcome` reads one line back; it is the one definition of the format for both sides.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

EVENT = "task_outcome"
SUCCESS = "success"
FAILURE = "failure"
RETRY = "retry"
OUTCOMES = (SUCCESS, FAILURE, RETRY)
MAX_ERROR_CHARACTERS = 300  # enough to name the error; a traceback stays in Celery's own log line


@dataclass(frozen=True)
class TaskOutcome:
    outcome: str  # one of OUTCOMES
    task: str  # the task's name
    task_id: str
    image_digest: str  # sha256:... of the image that ran it; empty where IMAGE_DIGEST is unset
    error: str = ""  # `Type: message` of a failure or retry

    @property
    def succeeded(self) -> bool:
        return self.outcome == SUCCESS


def parse_outcome(line: str) -> TaskOutcome | None:
    """The outcome a log line reports, or None for every other line."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("event") != EVENT or record.get("outcome") not in OUTCOMES:
        return None
    return TaskOutcome(
        outcome=str(record["outcome"]),
        task=str(record.get("task", "")),
        task_id=str(record.get("task_id", "")),
        image_digest=str(record.get("image_digest", "")),
        error=str(record.get("error", "")),
    )


def error_text(exception: BaseException | None) -> str:
    if exception is None:
        return ""
    return f"{type(exception).__name__}: {exception}"[:MAX_ERROR_CHARACTERS]


def log_outcome(outcome: str, task: Any, task_id: str | None, exception: BaseException | None = None) -> None:
    from django.conf import settings

    request = getattr(task, "request", None)
    if getattr(request, "is_eager", False):
        return  # `.apply()` runs inside its caller: not a worker's task run
    logger.info(
        "task %s: %s",
        outcome,
        getattr(task, "name", ""),
        extra={
            "event": EVENT,
            "outcome": outcome,
            "task": getattr(task, "name", ""),
            "task_id": task_id or getattr(request, "id", "") or "",
            "image_digest": settings.IMAGE_DIGEST,
            "error": error_text(exception),
        },
    )


def on_task_success(sender: Any = None, **_: Any) -> None:
    log_outcome(SUCCESS, sender, None)


def on_task_failure(
    sender: Any = None, task_id: str | None = None, exception: BaseException | None = None, **_: Any
) -> None:
    log_outcome(FAILURE, sender, task_id, exception)


def on_task_retry(sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
    # `reason` is Celery's Retry. It carries the exception the task retries on when the task
    # passed one (`exc=`); else that exception is the one being handled when it retried.
    cause = getattr(reason, "exc", None) or getattr(reason, "__context__", None) or reason
    log_outcome(
        RETRY, sender, getattr(request, "id", None), cause if isinstance(cause, BaseException) else None
    )
