"""`migrate`, serialized by a PostgreSQL advisory lock and with a bounded lock wait for its DDL.

Two releases can overlap (two pipelines, a retried deploy): the second run waits for the first,
then finds nothing left to apply. `lock_timeout` makes a migration that waits behind a long
transaction fail fast instead of queueing every query of the live site behind its ALTER TABLE.
"""

import logging
import sys

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection

from core.logging import JsonLineStream

logger = logging.getLogger(__name__)

# Any constant bigint works; it only has to be the same for every run of this command.
MIGRATION_LOCK_ID = 7_246_553_081


class Command(BaseCommand):
    help = "Run migrate while holding a PostgreSQL advisory lock, with a lock_timeout for the DDL."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Do not prompt the user for input of any kind.",
        )
        parser.add_argument(
            "--statement-timeout",
            default="0",
            help="PostgreSQL statement_timeout for the migration statements (default: 0, none).",
        )
        parser.add_argument(
            "--lock-timeout",
            default="10s",
            help="PostgreSQL lock_timeout for the migration statements (default: 10s).",
        )

    def handle(
        self, *args: object, interactive: bool, lock_timeout: str, statement_timeout: str, **options: object
    ) -> None:
        verbosity = int(options["verbosity"])  # type: ignore[call-overload]
        with connection.cursor() as cursor:
            # None of the app's bounds (settings.DATABASE_LOCK_TIMEOUT_MS and
            # DATABASE_STATEMENT_TIMEOUT_MS): waiting for another migrate run is expected, and
            # building an index or copying a column may take longer than a request may.
            cursor.execute("SELECT set_config('lock_timeout', '0', false)")
            cursor.execute("SELECT set_config('statement_timeout', %s, false)", [statement_timeout])
            logger.info("waiting for the migration lock")
            cursor.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_ID])
            try:
                cursor.execute("SELECT set_config('lock_timeout', %s, false)", [lock_timeout])
                # The migrate role prints JSON lines like every other role.
                output = JsonLineStream(sys.stdout, "django.migrate")
                call_command("migrate", interactive=interactive, verbosity=verbosity, stdout=output)
            finally:
                cursor.execute("SELECT set_config('lock_timeout', '0', false)")
                cursor.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_ID])
