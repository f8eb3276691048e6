"""Task pipeline benchmark: the product's signup pipeline against raw Celery, on one machine.

Real processes on loopback, started with the role commands of infra/app_contract.py:
- gunicorn (web command) serving POST /api/signups: one client posts signups one after another
  while no worker runs; the latency of each request is the enqueue latency;
- a Celery worker (worker command) with 1, 2 and 4 pool processes drains a backlog of real
  welcome-email tasks (rows and messages written in bulk, as the API leaves them); throughput is
  tasks completed per second between the first and the last `sent_at` the tasks write. The SMTP
  server answers at once (the "1 ms" task) or after 100 ms (the "100 ms" task);
- every run with the shipped settings, with the shipped settings on a short-task pool (the pool's
  `prefetchMultiplier` 4 on the worker command: late ack kept) and with Celery's defaults (early
  ack, prefetch 4: bench/settings_celery_defaults.py), alternating, the median of the repetitions
  reported;
- a throwaway Celery app with a no-op task (bench/noop_app.py), the Celery ceiling, and
  `redis-benchmark -t lpush,rpop`, the broker's ceiling;
- a profile of a single-process (`--pool solo`) worker running the 1 ms task: where its time goes.

PostgreSQL is the local server (database `bench`, created if missing); Redis is a throwaway
redis-server on a free port, so nothing here touches anybody else's Redis.

    .venv/bin/python -m bench.pipeline [--smoke] [--database-url postgres://...]
"""

from __future__ import annotations

import contextlib
import csv
import os
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
import requests
from celery import Celery
from psycopg import sql

from bench import noop_app
from bench.report import REPO_ROOT, argument_parser, describe_machine, machine_facts, table, write_results
from infra import app_contract
from testkit.processes import (
    APP_DIR,
    AppProcess,
    RedisServer,
    container_env,
    free_port,
    start_web,
    wait_for,
)
from testkit.smtp import SMTPServer

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench"
SIGNUP_TABLE = "signups_signup"
WELCOME_EMAIL_TASK = "signups.tasks.send_welcome_email"
COMMIT_PROBE_TABLE = "bench_commit_probe"
# SMTP reply delay of each task kind: the mail provider's latency is most of a real email task.
TASK_KINDS = {"1 ms": 0.0, "100 ms": 0.1}
SHIPPED, SHORT_POOL, DEFAULTS = "shipped", "short-task pool", "celery defaults"
# The prefetch multiplier of the short-task pool variant (workerPools[].prefetchMultiplier).
SHORT_POOL_PREFETCH = 4


@dataclass(frozen=True)
class Delivery:
    """How a worker is run: its settings module and its pool's prefetch multiplier."""

    settings_module: str
    prefetch_multiplier: int = 1


DELIVERY_SETTINGS = {
    SHIPPED: Delivery(app_contract.PRODUCTION_SETTINGS),
    SHORT_POOL: Delivery(app_contract.PRODUCTION_SETTINGS, SHORT_POOL_PREFETCH),
    DEFAULTS: Delivery("bench.settings_celery_defaults"),
}
# Each of these is compared with Celery's defaults against the targets.
COMPARED = (SHIPPED, SHORT_POOL)
PROFILED_SETTINGS = "bench.settings_profiled"
# Targets from the benchmark issue: p99 enqueue, and shipped / defaults throughput per task kind.
ENQUEUE_P99_TARGET_MS = 10.0
THROUGHPUT_RATIO_TARGETS = {"1 ms": 0.90, "100 ms": 0.95}
WARM_UP_REQUESTS = 20
# Added to every worker command: these features only talk to other workers (a second at start-up
# for mingle), and no run has another worker to talk to.
STARTUP_ONLY_FLAGS = ("--without-mingle", "--without-gossip")
# The no-op drain takes about two seconds: poll often enough that timing error stays under 1 %.
NOOP_START_POLL_SECONDS = 0.002
NOOP_DRAIN_POLL_SECONDS = 0.01
LOAD_WARNING = 0.5  # load average per core above which other work skews the numbers


@dataclass(frozen=True)
class Sizes:
    enqueue_requests: int
    commit_probes: int
    tasks: Mapping[str, int]  # per task kind
    repetitions: Mapping[str, int]  # per task kind; the median is reported
    processes: tuple[int, ...]
    noop_tasks: int
    redis_benchmark_requests: int
    profile_tasks: int


FULL = Sizes(
    enqueue_requests=1500,
    commit_probes=500,
    tasks={"1 ms": 500, "100 ms": 100},
    repetitions={"1 ms": 2, "100 ms": 1},
    processes=(1, 2, 4),
    noop_tasks=3000,
    redis_benchmark_requests=200_000,
    profile_tasks=400,
)
# Seconds, not minutes: enough to prove every step still works.
SMOKE = Sizes(
    enqueue_requests=10,
    commit_probes=10,
    tasks={"1 ms": 5},
    repetitions={"1 ms": 1},
    processes=(1,),
    noop_tasks=50,
    redis_benchmark_requests=1000,
    profile_tasks=5,
)


# --- services ---------------------------------------------------------------------------------------


class DelayedSMTPServer(SMTPServer):
    """The test SMTP server, answering every message after `reply_delay` seconds."""

    def __init__(self, reply_delay: float) -> None:
        super().__init__()
        self.reply_delay = reply_delay

    def accept(self, raw_message: bytes) -> bool:
        # Messages are counted in PostgreSQL (status "sent"); keeping them here would cost CPU.
        time.sleep(self.reply_delay)
        return True


def prepare_database(database_url: str) -> None:
    """Create the benchmark database if it does not exist (the migrate command fills it)."""
    url = urlsplit(database_url)
    name = url.path.lstrip("/")
    maintenance_url = urlunsplit(url._replace(path="/postgres"))
    with psycopg.connect(maintenance_url, autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


@dataclass
class Pipeline:
    """The running services and how to reach them."""

    database_url: str
    redis_url: str
    web_url: str
    smtp_ports: dict[str, int]
    scratch: Path

    def environment(self, task_kind: str, settings_module: str, **overrides: str) -> dict[str, str]:
        return container_env(
            self.database_url,
            self.redis_url,
            **{
                app_contract.DJANGO_SETTINGS_MODULE: settings_module,
                "EMAIL_URL": f"smtp://127.0.0.1:{self.smtp_ports[task_kind]}",
                "WORKER_HEARTBEAT_FILE": str(self.scratch / "worker-heartbeat"),
                # The bench settings modules live in the repository, next to app/.
                "PYTHONPATH": str(REPO_ROOT),
                **overrides,
            },
        )


@contextlib.contextmanager
def running_pipeline(database_url: str) -> Iterator[Pipeline]:
    progress("preparing the database; starting redis-server, SMTP servers and gunicorn")
    prepare_database(database_url)
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-pipeline-")))
        broker = RedisServer()
        broker.start()
        stack.callback(broker.stop)
        smtp_ports = {}
        for kind, delay in TASK_KINDS.items():
            server = stack.enter_context(DelayedSMTPServer(delay))
            smtp_ports[kind] = server.port
        pipeline = Pipeline(database_url, broker.url, "", smtp_ports, scratch)
        env = pipeline.environment("1 ms", app_contract.PRODUCTION_SETTINGS)
        migrate = subprocess.run(
            app_contract.migrate_command(), cwd=APP_DIR, env=env, capture_output=True, text=True, check=False
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"migrations failed:\n{migrate.stdout}\n{migrate.stderr}")
        port = free_port()
        web = start_web(env, port)
        stack.callback(web.stop)
        pipeline.web_url = f"http://127.0.0.1:{port}"
        yield pipeline


def reset(pipeline: Pipeline) -> None:
    """Empty the signups table and the throwaway broker between runs."""
    with psycopg.connect(pipeline.database_url, autocommit=True) as connection:
        connection.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(SIGNUP_TABLE)))
    with contextlib.closing(redis.Redis.from_url(pipeline.redis_url)) as client:
        client.flushdb()  # our own redis-server, nobody else's data


# --- the app pipeline -----------------------------------------------------------------------------


def progress(message: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def post_signups(pipeline: Pipeline, count: int, label: str) -> list[float]:
    """POST `count` signups one after another; the latency of each, in milliseconds."""
    latencies = []
    with requests.Session() as session:
        for index in range(count):
            body = {"email": f"bench-{label}-{index}@example.com"}
            started = time.perf_counter()
            response = session.post(f"{pipeline.web_url}/api/signups", json=body, timeout=10)
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code != 202:
                raise RuntimeError(f"POST /api/signups answered {response.status_code}: {response.text}")
    return latencies


def measure_enqueue_latency(pipeline: Pipeline, count: int) -> list[float]:
    progress(f"enqueue latency: {count} POST /api/signups, no worker running")
    # Warm the web process's code paths and connections first: a cold start is not enqueue latency.
    post_signups(pipeline, WARM_UP_REQUESTS, "warm-up")
    reset(pipeline)
    latencies = post_signups(pipeline, count, "enqueue")
    reset(pipeline)
    return latencies


def measure_commit_latency(database_url: str, count: int) -> list[float]:
    """Milliseconds of a one-row INSERT and its COMMIT: what this machine's PostgreSQL adds per write."""
    progress(f"PostgreSQL commit latency: {count} one-row transactions")
    table_name = sql.Identifier(COMMIT_PROBE_TABLE)
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())"
            ).format(table_name)
        )
        latencies = []
        for _ in range(count):
            started = time.perf_counter()
            connection.execute(sql.SQL("INSERT INTO {} DEFAULT VALUES").format(table_name))
            latencies.append((time.perf_counter() - started) * 1000)
        connection.execute(sql.SQL("DROP TABLE {}").format(table_name))
    return latencies


def publish(redis_url: str, task_name: str, arguments: Sequence[Sequence[str]], queue: str) -> None:
    """Publish one message per argument list, over one connection."""
    producer_app = Celery("bench-producer", broker=redis_url, set_as_current=False)
    with producer_app.producer_or_acquire() as producer:
        for args in arguments:
            producer_app.send_task(task_name, args=list(args), queue=queue, producer=producer)


def prefill_backlog(pipeline: Pipeline, count: int, label: str) -> None:
    """Queued signups and their welcome-email messages, as POST /api/signups leaves them, in bulk."""
    with psycopg.connect(pipeline.database_url) as connection:
        rows = connection.execute(
            sql.SQL(
                "INSERT INTO {} (id, email, status, attempts, last_error, created_at, updated_at, "
                "enqueued_at) SELECT gen_random_uuid(), 'bench-' || %s || '-' || n || '@example.com', "
                "'queued', 0, '', now(), now(), now() FROM generate_series(1, %s) AS n RETURNING id"
            ).format(sql.Identifier(SIGNUP_TABLE)),
            (label, count),
        ).fetchall()
    publish(pipeline.redis_url, WELCOME_EMAIL_TASK, [[str(row[0])] for row in rows], app_contract.EMAIL_QUEUE)


def sent_signups(database_url: str) -> tuple[int, int, float | None]:
    """(sent, failed, seconds between the first and the last sent_at)."""
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            sql.SQL(
                "SELECT count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE status = 'failed'), "
                "EXTRACT(EPOCH FROM max(sent_at) - min(sent_at)) FROM {}"
            ).format(sql.Identifier(SIGNUP_TABLE))
        ).fetchone()
    assert row is not None, "an aggregate query returns one row"
    sent, failed, spread = row
    return int(sent), int(failed), None if spread is None else float(spread)


def wait_until_sent(database_url: str, count: int, worker: AppProcess, timeout: float) -> float:
    """Wait until every signup is sent; the seconds between the first and the last delivery."""

    def all_sent() -> tuple[int, int, float | None] | None:
        if not worker.is_running():
            raise RuntimeError(f"the worker stopped: {worker.describe()}")
        sent, failed, spread = sent_signups(database_url)
        if failed:
            raise RuntimeError(f"{failed} welcome emails failed: {worker.describe()}")
        return (sent, failed, spread) if sent == count else None

    _, _, spread = wait_for(all_sent, timeout, f"not every welcome email was sent: {worker.describe()}", 0.2)
    return spread or 0.0


def stop_drained(worker: AppProcess) -> None:
    """Stop a worker whose queue is empty: a cold shutdown (SIGQUIT) has nothing to wait for."""
    if worker.is_running():
        worker.send_signal(signal.SIGQUIT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.popen.wait(30)
    worker.stop()


@dataclass(frozen=True)
class PipelineRun:
    task_kind: str
    settings: str
    processes: int
    tasks: int
    tasks_per_second: float


def run_app_workload(
    pipeline: Pipeline, task_kind: str, settings: str, processes: int, tasks: int
) -> PipelineRun:
    progress(f"{task_kind} task, {settings}, {processes} process(es): {tasks} tasks")
    reset(pipeline)
    label = f"{task_kind}-{settings}-{processes}".replace(" ", "")
    prefill_backlog(pipeline, tasks, label)
    delivery = DELIVERY_SETTINGS[settings]
    env = pipeline.environment(task_kind, delivery.settings_module)
    command = [
        *app_contract.worker_command("bench", app_contract.QUEUES, processes, delivery.prefetch_multiplier),
        *STARTUP_ONLY_FLAGS,
    ]
    worker = AppProcess(f"worker-{label}", command, env)
    try:
        expected_seconds = tasks * (TASK_KINDS[task_kind] + 0.01) / processes
        spread = wait_until_sent(pipeline.database_url, tasks, worker, timeout=60 + 5 * expected_seconds)
    finally:
        stop_drained(worker)
    return PipelineRun(task_kind, settings, processes, tasks, (tasks - 1) / spread if spread else 0.0)


# --- raw Celery and raw Redis ------------------------------------------------------------------------


@dataclass(frozen=True)
class NoopRun:
    settings: str
    processes: int
    tasks: int
    tasks_per_second: float


def run_noop_workload(pipeline: Pipeline, settings: str, processes: int, tasks: int) -> NoopRun:
    progress(f"no-op task, {settings}, {processes} process(es): {tasks} tasks")
    reset(pipeline)
    publish(pipeline.redis_url, "noop", [[]] * tasks, noop_app.QUEUE)
    # A bare environment: with DJANGO_SETTINGS_MODULE set, Celery would set up Django too.
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": tempfile.gettempdir(),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(REPO_ROOT),
        "CELERY_BROKER_URL": pipeline.redis_url,
        "BENCH_CELERY_SETTINGS": "shipped" if settings == "shipped" else "defaults",
    }
    command = ["celery", "--app", "bench.noop_app", "worker", "--queues", noop_app.QUEUE]
    command += ["--concurrency", str(processes), *STARTUP_ONLY_FLAGS]
    client = redis.Redis.from_url(pipeline.redis_url)
    worker = AppProcess(f"noop-worker-{processes}", command, env, cwd=REPO_ROOT)
    try:

        def remaining() -> int:
            return client.llen(noop_app.QUEUE) + client.hlen("unacked")

        def started() -> int | None:
            if not worker.is_running():
                raise RuntimeError(f"the no-op worker stopped: {worker.describe()}")
            left = remaining()
            return left if left < tasks else None

        first_left = wait_for(
            started, 60, f"the no-op worker took nothing: {worker.describe()}", NOOP_START_POLL_SECONDS
        )
        began = time.perf_counter()
        wait_for(
            lambda: remaining() == 0,
            120,
            f"the no-op worker did not drain: {worker.describe()}",
            NOOP_DRAIN_POLL_SECONDS,
        )
        elapsed = time.perf_counter() - began
    finally:
        stop_drained(worker)
        client.close()
    return NoopRun(settings, processes, tasks, first_left / elapsed if elapsed else 0.0)


def run_redis_benchmark(redis_url: str, requests_count: int) -> list[dict[str, Any]]:
    executable = shutil.which("redis-benchmark")
    if executable is None:
        raise RuntimeError("redis-benchmark is not installed (Debian package redis-tools)")
    url = urlsplit(redis_url)
    command = [executable, "-h", url.hostname or "127.0.0.1", "-p", str(url.port or 6379)]
    command += ["-t", "lpush,rpop", "-n", str(requests_count), "--csv"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return [
        {
            "test": row["test"],
            "requests_per_second": float(row["rps"]),
            "p50_ms": float(row["p50_latency_ms"]),
            "p99_ms": float(row["p99_latency_ms"]),
        }
        for row in csv.DictReader(output.splitlines())
    ]


# --- profile -------------------------------------------------------------------------------------------

# Where a function's own time goes, by the first matching fragment of its file path.
PROFILE_CATEGORIES = (
    ("serialization (kombu, JSON)", ("kombu/serialization", "kombu/utils/json")),
    ("logging (JSON lines to stdout)", ("logging/", "pythonjsonlogger", "core/logging")),
    ("broker (kombu, redis-py)", ("kombu/", "redis/")),
    ("ORM and PostgreSQL (Django db, psycopg)", ("django/db/", "psycopg")),
    ("SMTP and message building", ("smtplib", "email/", "django/core/mail")),
    ("Celery worker (tracing, signals, result backend)", ("celery/", "billiard/", "vine/")),
    ("Django other (settings, signals, time zones)", ("django/",)),
    ("application code", ("signups/", "core/", "queuemetrics/")),
)
# Helpers whose time belongs to whoever called them (C builtins, the standard library's plumbing).
PASS_THROUGH: tuple[str, ...] = (
    "~",
    "json/",
    "socket.py",
    "selectors.py",
    "ssl.py",
    "threading.py",
    "contextlib.py",
)
PASS_THROUGH += ("functools.py", "copy.py", "datetime.py", "uuid.py", "re/", "enum.py", "abc.py", "typing.py")
# Waiting for work is not work: the event loop's poll while the queue is empty.
IDLE_FUNCTIONS = ("<method 'poll' of 'select.epoll' objects>", "<built-in method time.sleep>")
MAX_ATTRIBUTION_DEPTH = 8


def _direct_category(filename: str) -> str | None:
    for category, fragments in PROFILE_CATEGORIES:
        if any(fragment in filename for fragment in fragments):
            return category
    return None


def categorize_profile(stats: pstats.Stats) -> dict[str, float]:
    """Seconds of own time per category; pass-through time goes to the callers, in proportion."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    totals: dict[str, float] = {}

    def credit(function: Any, seconds: float, depth: int) -> None:
        filename, _, name = function
        if name in IDLE_FUNCTIONS:
            return
        passes_through = filename == "~" or any(fragment in filename for fragment in PASS_THROUGH[1:])
        category = None if passes_through else _direct_category(filename)
        if category is None and passes_through and depth < MAX_ATTRIBUTION_DEPTH:
            callers = raw[function][4]
            caller_time = sum(edge[2] for edge in callers.values())
            if caller_time > 0:
                for caller, edge in callers.items():
                    credit(caller, seconds * edge[2] / caller_time, depth + 1)
                return
        category = category or "other"
        totals[category] = totals.get(category, 0.0) + seconds

    for function, (_, _, own_time, _, _) in raw.items():
        credit(function, own_time, 0)
    return totals


# Spans worth naming on their own (cumulative time, so they overlap the categories above).
PROFILE_SPANS = (
    ("opening a PostgreSQL connection", "django/db/backends/base/base.py", "connect"),
    ("COMMIT", "psycopg/connection.py", "commit"),
    ("SMTP conversation (send_messages)", "django/core/mail/backends/smtp.py", "send_messages"),
    ("log records (Logger.callHandlers)", "logging/__init__.py", "callHandlers"),
    ("broker acknowledgement (QoS.ack)", "kombu/transport/redis.py", "ack"),
)


def span_seconds(stats: pstats.Stats, filename_suffix: str, function: str) -> float:
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    return float(
        sum(
            values[3]
            for (filename, _, name), values in raw.items()
            if filename.endswith(filename_suffix) and name == function
        )
    )


@dataclass(frozen=True)
class ProfileResult:
    tasks: int
    wall_ms_per_task: float  # profiled, single process: profiler overhead included
    ms_per_task: dict[str, float]  # own time per category; sums to the profiled busy time
    span_ms_per_task: dict[str, float]


def profile_worker(pipeline: Pipeline, tasks: int) -> ProfileResult:
    progress(f"profile: 1 ms task, one solo worker, {tasks} tasks")
    reset(pipeline)
    prefill_backlog(pipeline, tasks, "profile")
    profile_path = pipeline.scratch / "worker.prof"
    env = pipeline.environment("1 ms", PROFILED_SETTINGS, BENCH_PROFILE_PATH=str(profile_path))
    command = [
        *app_contract.worker_command("profile", app_contract.QUEUES, 1),
        *STARTUP_ONLY_FLAGS,
        "--pool",
        "solo",
    ]
    worker = AppProcess("worker-profiled", command, env)
    try:
        spread = wait_until_sent(pipeline.database_url, tasks, worker, timeout=120)
    finally:
        stop_drained(worker)
    if not profile_path.exists():
        raise RuntimeError(f"the profiled worker wrote no profile: {worker.describe()}")
    stats = pstats.Stats(str(profile_path))
    seconds = categorize_profile(stats)
    return ProfileResult(
        tasks=tasks,
        wall_ms_per_task=1000 * spread / max(tasks - 1, 1),
        ms_per_task={
            name: 1000 * value / tasks for name, value in sorted(seconds.items(), key=lambda kv: -kv[1])
        },
        span_ms_per_task={
            label: 1000 * span_seconds(stats, filename, function) / tasks
            for label, filename, function in PROFILE_SPANS
        },
    )


# --- report ---------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def latency_summary(milliseconds: Sequence[float]) -> dict[str, float]:
    return {
        "count": len(milliseconds),
        "p50_ms": round(percentile(milliseconds, 0.50), 2),
        "p99_ms": round(percentile(milliseconds, 0.99), 2),
        "max_ms": round(max(milliseconds), 2),
    }


def median_rate(runs: Sequence[PipelineRun], task_kind: str, settings: str, processes: int) -> float:
    return statistics.median(
        run.tasks_per_second
        for run in runs
        if (run.task_kind, run.settings, run.processes) == (task_kind, settings, processes)
    )


def compare_settings(runs: Sequence[PipelineRun], sizes: Sizes) -> list[dict[str, Any]]:
    comparisons = []
    for kind in sizes.tasks:
        for processes in sizes.processes:
            rate = {settings: median_rate(runs, kind, settings, processes) for settings in DELIVERY_SETTINGS}
            ratios = {settings: rate[settings] / rate[DEFAULTS] for settings in COMPARED}
            comparisons.append(
                {
                    "task_kind": kind,
                    "processes": processes,
                    "tasks": sizes.tasks[kind],
                    "repetitions": sizes.repetitions[kind],
                    "tasks_per_second": {settings: round(value, 1) for settings, value in rate.items()},
                    "shipped_over_defaults": round(ratios[SHIPPED], 3),
                    "short_pool_over_defaults": round(ratios[SHORT_POOL], 3),
                    "target": THROUGHPUT_RATIO_TARGETS[kind],
                    "target_met": ratios[SHIPPED] >= THROUGHPUT_RATIO_TARGETS[kind],
                    "short_pool_target_met": ratios[SHORT_POOL] >= THROUGHPUT_RATIO_TARGETS[kind],
                }
            )
    return comparisons


def print_report(results: dict[str, Any]) -> None:
    _print_latency(results)
    _print_throughput(results)
    _print_ceilings(results)
    _print_profile(results["profile"])


def _print_latency(results: dict[str, Any]) -> None:
    enqueue, commit = results["enqueue_latency"], results["commit_latency"]
    print("\nHTTP enqueue latency: POST /api/signups through gunicorn, one client, one request at a time")
    print(
        table(
            ["requests", "p50 ms", "p99 ms", "max ms", "target", "met"],
            [
                [
                    enqueue["count"],
                    enqueue["p50_ms"],
                    enqueue["p99_ms"],
                    enqueue["max_ms"],
                    f"p99 <= {ENQUEUE_P99_TARGET_MS:g} ms",
                    "yes" if enqueue["target_met"] else "NO",
                ]
            ],
        )
    )
    print(
        f"for scale: one-row INSERT + COMMIT on this PostgreSQL: p50 {commit['p50_ms']} ms, "
        f"p99 {commit['p99_ms']} ms (a signup makes two commits)"
    )


def _print_throughput(results: dict[str, Any]) -> None:
    print("\nThroughput: welcome-email tasks completed per second by one worker draining a backlog (median)")
    print(
        table(
            [
                "task",
                "processes",
                "tasks x runs",
                "shipped/s",
                "short pool/s",
                "defaults/s",
                "shipped ratio",
                "short pool ratio",
                "target",
                "met (shipped, short pool)",
            ],
            [
                [
                    c["task_kind"],
                    c["processes"],
                    f"{c['tasks']} x {c['repetitions']}",
                    c["tasks_per_second"][SHIPPED],
                    c["tasks_per_second"][SHORT_POOL],
                    c["tasks_per_second"][DEFAULTS],
                    c["shipped_over_defaults"],
                    c["short_pool_over_defaults"],
                    f">= {c['target']:.2f}",
                    f"{_yes(c['target_met'])}, {_yes(c['short_pool_target_met'])}",
                ]
                for c in results["throughput"]
            ],
        )
    )
    print(
        f"ratio = variant / defaults; short pool = the shipped settings with prefetchMultiplier "
        f"{SHORT_POOL_PREFETCH} (late ack kept)"
    )


def _yes(met: bool) -> str:
    return "yes" if met else "NO"


def _print_ceilings(results: dict[str, Any]) -> None:
    print("\nBare Celery: no-op task, no result backend (the Celery ceiling)")
    noop = {(run["settings"], run["processes"]): run for run in results["noop"]}
    print(
        table(
            ["processes", "tasks", "shipped/s", "defaults/s", "ratio"],
            [
                [
                    processes,
                    noop[SHIPPED, processes]["tasks"],
                    round(noop[SHIPPED, processes]["tasks_per_second"]),
                    round(noop[DEFAULTS, processes]["tasks_per_second"]),
                    round(
                        noop[SHIPPED, processes]["tasks_per_second"]
                        / noop[DEFAULTS, processes]["tasks_per_second"],
                        3,
                    ),
                ]
                for processes in results["sizes"]["processes"]
            ],
        )
    )
    print("\nredis-benchmark (the broker's ceiling; 50 clients, no pipelining)")
    print(
        table(
            ["command", "requests/s", "p50 ms", "p99 ms"],
            [
                [r["test"], round(r["requests_per_second"]), r["p50_ms"], r["p99_ms"]]
                for r in results["redis_benchmark"]
            ],
        )
    )


def _print_profile(profile: dict[str, Any]) -> None:
    print(
        f"\nWhere a 1 ms task's time goes: one --pool solo worker under cProfile, {profile['tasks']} tasks, "
        f"{profile['wall_ms_per_task']:.2f} ms per task with the profiler on"
    )
    total = sum(profile["ms_per_task"].values())
    print(
        table(
            ["own time of", "ms/task", "share"],
            [[name, round(ms, 3), f"{ms / total:.0%}"] for name, ms in profile["ms_per_task"].items()],
        )
    )
    print(
        table(
            ["span (inclusive)", "ms/task"],
            [[name, round(ms, 3)] for name, ms in profile["span_ms_per_task"].items()],
        )
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argument_parser(__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the benchmark still runs")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    args = parser.parse_args(argv)
    sizes = SMOKE if args.smoke else FULL
    facts = machine_facts()
    print(f"Task pipeline benchmark{' (smoke)' if args.smoke else ''} | {describe_machine(facts)}")
    if facts["load_average"][0] > LOAD_WARNING * (facts["cpu_count"] or 1):  # type: ignore[index,operator]
        print("warning: the machine is busy; other work skews these numbers")

    with running_pipeline(args.database_url) as pipeline:
        enqueue_ms = measure_enqueue_latency(pipeline, sizes.enqueue_requests)
        commit_ms = measure_commit_latency(pipeline.database_url, sizes.commit_probes)
        # Settings alternate within each repetition, so a burst of outside load hits them alike.
        app_runs = [
            run_app_workload(pipeline, kind, settings, processes, sizes.tasks[kind])
            for kind in sizes.tasks
            for _ in range(sizes.repetitions[kind])
            for processes in sizes.processes
            for settings in DELIVERY_SETTINGS
        ]
        noop_runs = [
            run_noop_workload(pipeline, settings, processes, sizes.noop_tasks)
            for processes in sizes.processes
            for settings in (SHIPPED, DEFAULTS)
        ]
        redis_runs = run_redis_benchmark(pipeline.redis_url, sizes.redis_benchmark_requests)
        profile = profile_worker(pipeline, sizes.profile_tasks)

    enqueue = latency_summary(enqueue_ms)
    enqueue["target_met"] = enqueue["p99_ms"] <= ENQUEUE_P99_TARGET_MS
    results = {
        "machine": facts,
        "machine_after": machine_facts(),
        "smoke": args.smoke,
        "sizes": asdict(sizes),
        "enqueue_latency": enqueue,
        "commit_latency": latency_summary(commit_ms),
        "throughput": compare_settings(app_runs, sizes),
        "runs": [asdict(run) for run in app_runs],
        "noop": [asdict(run) for run in noop_runs],
        "redis_benchmark": redis_runs,
        "profile": asdict(profile),
    }
    print_report(results)
    write_results("pipeline-smoke" if args.smoke else "pipeline", results, args.results_dir)
    return results


if __name__ == "__main__":
    main()
