"""JSON log lines for every role: the formatter, the request and task context, email redaction."""

import logging
import re
import threading
from contextvars import ContextVar
from typing import TextIO

from celery import current_task
from pythonjsonlogger.json import JsonFormatter

# One JSON line per record, the same in every role (Django, Celery and gunicorn's own loggers).
JSON_FORMATTER = {
    "()": "core.logging.RedactingJsonFormatter",
    "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
    "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
}

# Anything shaped like an email address, also inside JSON text (non-ASCII escaped as \uXXXX).
# Quotes, braces and slashes end a match, so the text around an address survives; the last label
# starts with a letter, so IP addresses (a password-masked URL, **@10.0.0.1) are no match.
EMAIL_ADDRESS = re.compile(r"[\w.!#$%&*+=?^~\\-]+@[\w\\-]+(?:\.[\w\\-]+)*\.[A-Za-z][\w\\-]*")
REDACTED = "[email]"


def redact_emails(text: str) -> str:
    return EMAIL_ADDRESS.sub(REDACTED, text)


class RedactingJsonFormatter(JsonFormatter):
    """JSON lines with every email address replaced, tracebacks included.

    Addresses are personal data. The app logs signup ids, but exceptions from mail servers,
    the database or libraries may quote an address; this is the one place all of them pass.
    """

    def format(self, record: logging.LogRecord) -> str:
        return redact_emails(super().format(record))


class RejectedHostFilter(logging.Filter):
    """A request for a host this app does not serve: one WARNING line, no traceback.

    Django logs DisallowedHost at ERROR with the traceback; scanners and misconfigured clients send
    such requests all day, and they are not errors of the app.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text = None, None
        return True


class JsonLineStream:
    """A text stream that turns every plain line written to it into a JSON log line.

    Celery's worker and Beat print a few lines (shutdown notices) straight to stdout instead of
    logging them. Installed as their stdout, this keeps every line the process prints JSON;
    lines that already are JSON objects pass unchanged.
    """

    def __init__(self, target: TextIO, logger_name: str) -> None:
        self.target = target
        self.logger_name = logger_name
        self.formatter = RedactingJsonFormatter(
            JSON_FORMATTER["fmt"], rename_fields=JSON_FORMATTER["rename_fields"]
        )
        self._buffer = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._buffer += text
            *lines, self._buffer = self._buffer.split("\n")
            for line in lines:
                self._write_line(line)
        return len(text)

    def _write_line(self, line: str) -> None:
        if not line.strip():
            return
        if not line.startswith("{"):
            record = logging.LogRecord(self.logger_name, logging.INFO, "", 0, line.strip(), None, None)
            line = self.formatter.format(record)
        self.target.write(line + "\n")
        self.target.flush()

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> None:
        # No descriptor: Celery's safe_say() writes plain text straight to the descriptor of
        # stdout when it has one, and skips the write when it has none.
        return None

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
