"""What a worker or Beat process prints outside logging is JSON too: Python's own tracebacks on
stderr (a failing multiprocessing finalizer at exit, an exception in a thread) and stray prints.
awslogs sends each line as one CloudWatch event, so a plain traceback would arrive as a dozen
unparseable events."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from testkit.processes import APP_DIR, container_env

# A process set up like the worker (core.celery_lifecycle.print_json_only), then doing what
# Python prints without logging: billiard's pool registers multiprocessing finalizers, and
# multiprocessing's exit handler prints the traceback of one that raises.
PROGRAM = textwrap.dedent(
    """
    import threading
    import django
    django.setup()
    from multiprocessing.util import Finalize
    from core.celery_lifecycle import print_json_only

    print_json_only("celery.worker")

    def fail_at_exit():
        raise RuntimeError("finalizer of ada@example.com failed")

    finalizer = Finalize(None, fail_at_exit, exitpriority=10)

    def fail_in_thread():
        raise ValueError("thread failed")

    thread = threading.Thread(target=fail_in_thread)
    thread.start()
    thread.join()
    print("a stray print")
    """
)


def run_program(test_database_url: str, redis_url: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        cwd=APP_DIR,
        env=container_env(test_database_url, redis_url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return (done.stdout + done.stderr).splitlines()


def test_every_line_python_prints_outside_logging_is_json(test_database_url: str, redis_url: str) -> None:
    lines = run_program(test_database_url, redis_url)
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"a line that is not JSON: {line!r}; all lines: {lines}") from None
    messages = [record["message"] for record in records]
    assert "a stray print" in messages, messages


def test_a_traceback_is_one_error_record_with_its_frames(test_database_url: str, redis_url: str) -> None:
    records = [json.loads(line) for line in run_program(test_database_url, redis_url)]
    tracebacks = {record["message"]: record for record in records if "exc_info" in record}
    assert set(tracebacks) == {"RuntimeError: finalizer of [email] failed", "ValueError: thread failed"}, (
        f"expected one record per traceback, message = the exception line, address redacted: {records}"
    )
    finalizer = tracebacks["RuntimeError: finalizer of [email] failed"]
    assert finalizer["level"] == "ERROR", finalizer
    assert "_run_finalizers" in finalizer["exc_info"] and "fail_at_exit" in finalizer["exc_info"], (
        f"the record keeps the traceback's frames: {finalizer}"
    )
    assert "ada@example.com" not in json.dumps(records), "the traceback's address must be redacted"
