"""`release_state`: what this image would release, as one JSON line for the release checks.

    python manage.py release_state [--applied] [--live] [--migrate-if-empty] [--lint APP.MIGRATION ...]

Always: the Celery tasks the image registers and the queue each one routes to, the Beat schedule
(each entry's task, queue, schedule, period in seconds and policy),
the migrations on disk and those marked as the contract step of an expand/contract change (a
`contract = True` attribute on the Migration class, or django-migration-linter's IgnoreMigration).
--applied adds the migrations the database has applied; --live the messages the broker holds
(waiting, unacknowledged or delayed, and dynamic Beat entries) counted by task name; --lint
django-migration-linter's findings for the named migrations. The release phase, the pull request
check and rollback (infra/release/compatibility.py) decide from this line.

--migrate-if-empty (with --applied): after the report, a database with no migration applied (a
new stack's, a new preview's) is migrated in the same process (locked_migrate), and the exit code
says whether that worked. Such a database has no running version to protect, so the gate has
nothing to check first, and the release needs one task instead of two. Any other database is
left alone: its migrations wait for the gate.
"""

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from celery import current_app
from celery.schedules import maybe_schedule
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from core import schedules

# Each output line starts with this, then `<part>/<parts> `: the JSON text is cut into parts so no
# line exceeds what a log driver keeps whole (Docker splits lines at 16 KiB).
MARKER = "RELEASE_STATE"  # the same as infra/release/compatibility.py reads
PART_CHARS = 8000
# Messages read per queue: enough to name every task that waits, bounded for a huge backlog.
SAMPLE_PER_QUEUE = 10_000
# kombu's Redis transport: unacknowledged (and delayed) messages, and priority list suffixes.
UNACKED_KEY = "unacked"
PRIORITY_SEPARATOR = "\x06\x16"


class Command(BaseCommand):
    help = "Print the tasks, queues, Beat schedule and migrations of this image as one JSON line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--applied", action="store_true", help="add the applied migrations (database)")
        parser.add_argument("--live", action="store_true", help="add the messages the broker holds")
        parser.add_argument("--lint", nargs="*", default=None, metavar="APP.MIGRATION")
        parser.add_argument(
            "--migrate-if-empty",
            action="store_true",
            help="after the report, migrate a database that has no migration applied (needs --applied)",
        )

    def handle(
        self,
        *args: object,
        applied: bool,
        live: bool,
        lint: list[str] | None,
        migrate_if_empty: bool,
        **options: object,
    ) -> None:
        if migrate_if_empty and not applied:
            raise CommandError("--migrate-if-empty needs --applied: the report says whether it was empty")
        app = current_app._get_current_object()
        app.loader.import_default_modules()
        state: dict[str, Any] = {**celery_state(app), **migration_state(), "retired": retired_tasks()}
        if applied:
            state["applied"] = sorted(f"{label}.{name}" for label, name in applied_migrations())
        if live:
            state["live"] = broker_state(app)
        if lint is not None:
            state["lint"] = lint_migrations(lint)
        for line in output_lines(state):
            self.stdout.write(line)
        if migrate_if_empty and not state["applied"]:
            call_command("locked_migrate", interactive=False)


def output_lines(state: dict[str, Any]) -> list[str]:
    text = json.dumps(state, sort_keys=True)
    parts = [text[start : start + PART_CHARS] for start in range(0, len(text), PART_CHARS)]
    return [f"{MARKER} {number}/{len(parts)} {part}" for number, part in enumerate(parts, start=1)]


def celery_state(app: Any) -> dict[str, Any]:
    tasks = sorted(name for name in app.tasks if not name.startswith("celery."))
    beat = {
        entry: {
            "task": spec["task"],
            "queue": (spec.get("options") or {}).get("queue") or route(app, spec["task"]),
            **schedule_state(spec),
        }
        for entry, spec in (app.conf.beat_schedule or {}).items()
    }
    return {"tasks": tasks, "routes": {task: route(app, task) for task in tasks}, "beat": beat}


def schedule_state(spec: dict[str, Any]) -> dict[str, Any]:
    """What the per-entry alarms and the schedule diff need: the schedule as people read it, its
    period (the shortest time between two runs; null when runs cannot be counted) and its policy."""
    schedule = maybe_schedule(spec["schedule"])
    return {
        "schedule": schedules.describe(schedule),
        "period_seconds": schedules.period_seconds(schedule),
        "policy": schedules.EntryPolicy.of(spec.get("options")).record(),
    }


def retired_tasks() -> list[str]:
    """Tasks this release removes on purpose (setting RELEASE_RETIRED_TASKS): their messages must be
    gone, which the release phase checks against the live broker."""
    from django.conf import settings

    return sorted(getattr(settings, "RELEASE_RETIRED_TASKS", []))


def route(app: Any, task: str) -> str:
    """The queue a message for `task` goes to under the image's routing settings."""
    queue = app.amqp.router.route({}, task).get("queue")
    return str(getattr(queue, "name", queue) or app.conf.task_default_queue)


def migration_state() -> dict[str, Any]:
    loader = MigrationLoader(None, ignore_no_migrations=True)
    migrations = loader.disk_migrations
    return {
        "migrations": sorted(f"{label}.{name}" for label, name in migrations),
        "contract": sorted(
            f"{label}.{name}" for (label, name), migration in migrations.items() if is_contract(migration)
        ),
    }


def is_contract(migration: Any) -> bool:
    marked = bool(getattr(migration, "contract", False))
    return marked or any(type(op).__name__ == "IgnoreMigration" for op in migration.operations)


def applied_migrations() -> set[tuple[str, str]]:
    return set(MigrationRecorder(connection).applied_migrations())


def broker_state(app: Any) -> dict[str, Any]:
    with app.connection_for_read() as broker:
        client = broker.default_channel.client
        # kombu prefixes the commands it sends itself, not SCAN, LRANGE or HSCAN: only this stack's
        # keys are read (a preview shares its Redis with the others).
        prefix = (app.conf.broker_transport_options or {}).get("global_keyprefix", "")
        queues: dict[str, Counter[str]] = {}
        for key in client.scan_iter(match=f"{prefix}*", _type="list"):
            queue = key.decode().removeprefix(prefix).split(PRIORITY_SEPARATOR)[0]
            counts = queues.setdefault(queue, Counter())
            counts.update(message_task(raw) for raw in client.lrange(key, 0, SAMPLE_PER_QUEUE - 1))
        unacked: Counter[str] = Counter()
        for _tag, raw in client.hscan_iter(prefix + UNACKED_KEY):
            unacked[message_task(json.loads(raw)[0])] += 1
    return {
        "queues": {queue: dict(counts) for queue, counts in queues.items()},
        "unacked": dict(unacked),
        "beat_entries": dynamic_beat_entries(app),
    }


def message_task(raw: Any) -> str:
    """The task name a kombu message carries (protocol 2 headers, or protocol 1 body)."""
    message = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
    headers = message.get("headers") or {}
    return str(headers.get("task") or message.get("properties", {}).get("task") or "?")


def dynamic_beat_entries(app: Any) -> dict[str, str]:
    """Beat entries created at run time (redbeat), which no schedule setting re-creates: name -> task."""
    if "redbeat" not in str(app.conf.beat_scheduler).lower():
        return {}
    from redbeat.schedulers import RedBeatConfig, get_redis

    conf = RedBeatConfig(app)
    client = get_redis(app)
    statics = {
        member.decode() if isinstance(member, bytes) else member
        for member in client.smembers(conf.statics_key)
    }
    entries: dict[str, str] = {}
    for key in client.zrange(conf.schedule_key, 0, -1):
        key = key.decode() if isinstance(key, bytes) else key
        name = key[len(conf.key_prefix) :]
        definition = client.hget(key, "definition")
        if name not in statics and definition:
            entries[name] = json.loads(definition).get("task", "?")
    return entries


def lint_migrations(names: list[str]) -> dict[str, list[str]]:
    """django-migration-linter's backward-incompatibility findings for each named migration of the
    project itself; migrations of installed packages (Django's own apps) are theirs to judge."""
    from django_migration_linter import MigrationLinter
    from django_migration_linter.sql_analyser import analyse_sql_statements

    linter = MigrationLinter(no_cache=True, no_output=True)
    findings: dict[str, list[str]] = {}
    for name in names:
        label, _, migration_name = name.partition(".")
        migration = linter.migration_loader.disk_migrations[(label, migration_name)]
        if not in_project(migration):
            continue
        errors, _ignored, _warnings = analyse_sql_statements(
            linter.sql_analyser_class, linter.get_sql(label, migration_name), linter.exclude_migration_tests
        )
        data_errors, _, _ = linter.analyse_data_migration(migration)
        findings[name] = [issue_text(issue) for issue in [*errors, *data_errors]]
    return findings


def in_project(migration: Any) -> bool:
    from django.conf import settings

    source = Path(sys.modules[type(migration).__module__].__file__ or "").resolve()
    return source.is_relative_to(Path(settings.BASE_DIR).resolve())


def issue_text(issue: Any) -> str:
    where = ", ".join(
        f"{kind}: {value}" for kind, value in (("table", issue.table), ("column", issue.column)) if value
    )
    return f"{issue.message} ({where})" if where else str(issue.message)
