"""JSON log lines for every role: the formatter, the request and task context, email redaction."""

import logging
import os
import re
import sys
import threading
import weakref
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
# Linear in the text: the search only starts at an "@" (a literal the regex engine skips to), every
# repetition is bounded by the lengths RFC 5321 allows (a label 63, a local part 64 octets, here 128
# characters for JSON escapes), and the local part is read backwards from its "@" over at most
# MAX_LOCAL_PART characters. An unbounded pattern backtracked over `local x domain` (seconds per
# 8 KB User-Agent, never ending on a 1 MB task argument).
AT_DOMAIN = re.compile(r"@[\w\\-]{1,63}(?:\.[\w\\-]{1,63}){0,8}\.[A-Za-z][\w\\-]{0,62}")
LOCAL_PART = re.compile(r"[\w.!#$%&*+=?^~\\-]+")
MAX_LOCAL_PART = 128
REDACTED = "[email]"
# A logged message longer than this is cut (a task argument, a client's header): bounded output
# per line, and bounded work for the redaction.
MAX_MESSAGE_CHARS = 16 * 1024


def redact_emails(text: str) -> str:
    pieces: list[str] = []
    copied = 0  # text[:copied] is already in pieces
    for domain in AT_DOMAIN.finditer(text):
        at = domain.start()
        window = text[max(copied, at - MAX_LOCAL_PART) : at]
        local = LOCAL_PART.match(window[::-1])
        if local is None:
            continue
        pieces += [text[copied : at - local.end()], REDACTED]
        copied = domain.end()
    pieces.append(text[copied:])
    return "".join(pieces)


def bounded(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} characters cut]"


class RedactingJsonFormatter(JsonFormatter):
    """JSON lines with every email address replaced, tracebacks included.

    Addresses are personal data. The app logs signup ids, but exceptions from mail servers,
    the database or libraries may quote an address; this is the one place all of them pass.
    """

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if len(message) > MAX_MESSAGE_CHARS:
            record.msg, record.args = bounded(message, MAX_MESSAGE_CHARS), None
        return redact_emails(super().format(record))


class RedactedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler whose error report quotes no part of the record.

    logging.Handler.handleError prints the record's message and arguments as they are, i.e.
    unredacted, to stderr when formatting or writing fails.
    """

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        sys.stderr.write(
            f'{{"level": "ERROR", "logger": "core.logging", "message": "could not log a record of '
            f'{record.name} at {record.levelname}: {type(error).__name__}"}}\n'
        )


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
    logging them, and Python prints some tracebacks straight to stderr (a failing exit handler, an
    exception in a thread or a finalizer). Installed as their stdout and stderr, this keeps every
    line the process prints JSON; lines that already are JSON objects pass unchanged. A traceback
    becomes one record (the exception line as its message, the whole traceback as `exc_info`), so
    CloudWatch shows it as one event instead of one event per line.
    """

    TRACEBACK_START = "Traceback (most recent call last):"

    def __init__(self, target: TextIO, logger_name: str, level: int = logging.INFO) -> None:
        self.target = target
        self.logger_name = logger_name
        self.level = level
        self.formatter = RedactingJsonFormatter(
            JSON_FORMATTER["fmt"], rename_fields=JSON_FORMATTER["rename_fields"]
        )
        self._buffer = ""
        self._traceback: list[str] = []  # the lines of a traceback being written
        self._lock = threading.Lock()
        LINE_STREAMS.add(self)

    def write(self, text: str) -> int:
        with self._lock:
            self._buffer += text
            *lines, self._buffer = self._buffer.split("\n")
            for line in lines:
                self._take_line(line)
        return len(text)

    def _take_line(self, line: str) -> None:
        if line.strip() == self.TRACEBACK_START:
            self._traceback = [line]
        elif self._traceback and (line[:1].isspace() or not line.strip()):
            self._traceback.append(line)
        elif self._traceback:
            # The exception line (`ValueError: ...`) ends a traceback.
            traceback = "\n".join([*self._traceback, line])
            self._traceback = []
            self._write_record(line.strip(), logging.ERROR, traceback)
        elif line.strip():
            self._write_line(line)

    def _write_line(self, line: str) -> None:
        if line.startswith("{"):
            self.target.write(line + "\n")
            self.target.flush()
        else:
            self._write_record(line.strip(), self.level)

    def _write_record(self, message: str, level: int, traceback: str | None = None) -> None:
        record = logging.LogRecord(self.logger_name, level, "", 0, message, None, None)
        record.exc_text = traceback
        self.target.write(self.formatter.format(record) + "\n")
        self.target.flush()

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> None:
        # No descriptor: Celery's safe_say() writes plain text straight to the descriptor of
        # stdout when it has one, and skips the write when it has none.
        return None


# A prefork child starts with a copy of each stream: a lock another thread held at the fork would
# never be released in the child.
LINE_STREAMS: "weakref.WeakSet[JsonLineStream]" = weakref.WeakSet()


def _new_locks_after_fork() -> None:
    for stream in LINE_STREAMS:
        stream._lock = threading.Lock()


os.register_at_fork(after_in_child=_new_locks_after_fork)

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
