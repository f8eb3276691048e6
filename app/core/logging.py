"""Context for JSON log lines: the request id in web logs, the task id and name in worker logs."""

import logging
from contextvars import ContextVar

from celery import current_task

# One JSON line per record, the same in every role (Django, Celery and gunicorn's own loggers).
JSON_FORMATTER = {
    "()": "pythonjsonlogger.json.JsonFormatter",
    "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
    "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
}

# Set by core.middleware.RequestIdMiddleware for the duration of one request.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


class ContextFilter(logging.Filter):
    """Adds `request_id`, `task_id` and `task_name` to a record when they are known."""

    def filter(self, record: logging.LogRecord) -> bool:
        current_request_id = request_id.get()
        if current_request_id:
            record.request_id = current_request_id
        task = current_task._get_current_object()
        if task is not None and task.request.id:
            record.task_id = task.request.id
            record.task_name = task.name
        return True
