"""Worker and Beat process lifecycle: logging, database connections per task, the worker heartbeat
and a bounded shutdown."""

import logging
import logging.config
import signal
import sys
import threading

from celery import VERSION_BANNER, bootsteps
from celery.apps.beat import Beat
from celery.apps.worker import Worker
from celery.signals import (
    setup_logging,
    task_postrun,
    task_prerun,
    worker_process_init,
    worker_shutting_down,
)
from django.conf import settings
from django.db import close_old_connections
from django.db.backends.signals import connection_created

from core.heartbeat import touch
from core.logging import JsonLineStream

logger = logging.getLogger(__name__)


@setup_logging.connect
def use_django_logging(**kwargs) -> None:
    """Worker and Beat log JSON lines to stdout like the web role, instead of Celery's format."""
    logging.config.dictConfig(settings.LOGGING)
    logging.captureWarnings(True)


def print_json_only(logger_name: str) -> None:
    """Make everything this process prints a JSON line, from before Celery's own start-up.

    Warnings (e.g. Celery's SecurityWarning) go through logging; stray prints to stdout become JSON
    lines. Celery's plain-text shutdown notices are dropped (they write to the file descriptor of
    stdout unless it has none); the worker_shutting_down receiver below logs the shutdown instead.
    What Python itself prints to stderr (the traceback of a failing exit handler or finalizer, of
    an exception in a thread) becomes JSON too, a traceback one record.
    """
    use_django_logging()
    if not isinstance(sys.stdout, JsonLineStream):
        sys.stdout = sys.__stdout__ = JsonLineStream(sys.__stdout__, logger_name)
    if not isinstance(sys.stderr, JsonLineStream):
        sys.stderr = JsonLineStream(sys.__stderr__, logger_name, level=logging.WARNING)


class JsonStartupWorker(Worker):
    """The worker, announcing itself with one JSON log line instead of the plain-text banner."""

    def on_before_init(self, **kwargs) -> None:
        print_json_only("celery.worker")
        super().on_before_init(**kwargs)

    def emit_banner(self) -> None:
        queues = sorted(queue.name for queue in self.app.amqp.queues.consume_from.values())
        logger.info(
            "celery worker %s starting: queues %s, concurrency %s",
            VERSION_BANNER, ",".join(queues), self.concurrency,
        )


class JsonStartupBeat(Beat):
    """Beat, announcing itself with one JSON log line instead of the plain-text banner."""

    def __init__(self, *args, quiet: bool = False, **kwargs) -> None:
        print_json_only("celery.beat")
        super().__init__(*args, quiet=True, **kwargs)

    def setup_logging(self, colorize: bool | None = None) -> None:
        super().setup_logging(colorize)
        logger.info("celery beat %s starting: scheduler %s", VERSION_BANNER, self.scheduler_cls)


@task_prerun.connect
@task_postrun.connect
def apply_connection_lifetime(sender=None, **kwargs) -> None:
    """Reuse a task's database connection for the next one while it is healthy and younger than
    CONN_MAX_AGE (CELERY_DB_REUSE_MAX stops Celery from closing it after every task); a connection
    broken by a PostgreSQL restart or left in a failed transaction is closed here instead.

    Eager tasks (`.apply()`) run inside the caller's own transaction, which must stay open.
    """
    if not getattr(sender.request, "is_eager", False):
        close_old_connections()


@worker_process_init.connect
def bound_database_waits_by_the_task_limit(**kwargs) -> None:
    """A task's statements and lock waits are bounded by its hard time limit, not by the web's request
    bounds (settings.DATABASE_LOCK_TIMEOUT_MS, DATABASE_STATEMENT_TIMEOUT_MS): a report may query for
    minutes, and a task that waits out a migration's lock just runs late. Every connection this pool
    process opens (none is inherited across the fork) gets the task's bounds."""
    connection_created.connect(_apply_task_bounds, weak=False, dispatch_uid="task-database-bounds")


def _apply_task_bounds(sender, connection, **kwargs) -> None:
    limit_ms = str(settings.CELERY_TASK_TIME_LIMIT * 1000)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('lock_timeout', %s, false), set_config('statement_timeout', %s, false)",
            [limit_ms, limit_ms],
        )


class WorkerHeartbeat(bootsteps.StartStopStep):
    """Touches WORKER_HEARTBEAT_FILE from the worker's event loop in the main process.

    The timer runs in the same loop that consumes messages, so a stuck worker stops touching it and
    the container health check (file age) replaces the container.
    """

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs) -> None:
        super().__init__(worker, **kwargs)
        self.timer_entry = None

    def start(self, worker) -> None:
        touch(settings.WORKER_HEARTBEAT_FILE)
        self.timer_entry = worker.timer.call_repeatedly(
            settings.HEARTBEAT_TOUCH_SECONDS, touch, (settings.WORKER_HEARTBEAT_FILE,)
        )

    def stop(self, worker) -> None:
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None


@worker_shutting_down.connect
def bound_warm_shutdown(sig: str, how: str, exitcode: int, **kwargs) -> None:
    """Turn a warm shutdown into a cold one shortly before ECS would SIGKILL the worker.

    SIGTERM (ECS stop) starts a warm shutdown: running tasks may finish and the worker exits as soon
    as they do. A task still running near the stop timeout is cancelled by the cold shutdown
    (SIGQUIT) and its message is put back on the queue for another worker, instead of being killed
    and waiting a whole visibility timeout.
    """
    if how != "Warm":
        return
    delay = settings.CELERY_WORKER_STOP_TIMEOUT - settings.CELERY_WORKER_COLD_SHUTDOWN_MARGIN
    logger.info("warm shutdown: running tasks are requeued if still running in %s s", delay)
    # Sent to the main thread itself: a process-wide kill() may be delivered to the timer thread,
    # and the main thread would then sleep through it inside its blocking wait for the pool.
    main_thread_id = threading.main_thread().ident
    timer = threading.Timer(delay, signal.pthread_kill, args=(main_thread_id, signal.SIGQUIT))
    timer.daemon = True
    timer.start()
