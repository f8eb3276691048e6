"""`preview_tenant`: a preview's database, role and Redis keys on its base (core.preview_tenant).

    python manage.py preview_tenant create --connection-limit N [--database-url-secret ARN]
    python manage.py preview_tenant drop [--database-url-secret ARN]
    python manage.py preview_tenant orphans --keep pr-1,pr-7 [--remove]

Run as a one-off task of the preview base's tenant task definition. ADMIN_DATABASE_URL is the
base's admin connection; the preview's DATABASE_URL (its role, password and database) is read from
the Secrets Manager secret --database-url-secret names (with the task role), else from the
DATABASE_URL variable; REDIS_URL and REDIS_KEY_PREFIX are its slice of the broker. Exit 0 on
success, otherwise 1 with a one-line reason on stderr.
"""

from __future__ import annotations

import os
from typing import Any

import psycopg
import redis
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core import preview_tenant
from core.preview_tenant import Tenant, TenantError

ADMIN_DATABASE_URL = "ADMIN_DATABASE_URL"
DATABASE_URL = "DATABASE_URL"
CONNECT_TIMEOUT_SECONDS = 10


class Command(BaseCommand):
    help = "Create or drop a preview's database, role and Redis keys on its base, or list orphans."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="create (or converge) the preview's role and database")
        create.add_argument("--connection-limit", type=int, required=True)
        drop = actions.add_parser("drop", help="drop the preview's database, role and keys under its prefix")
        for parser_of_preview in (create, drop):
            parser_of_preview.add_argument(
                "--database-url-secret",
                default="",
                metavar="ARN",
                help="Secrets Manager secret holding the preview's DATABASE_URL (default: $DATABASE_URL)",
            )
        orphans = actions.add_parser("orphans", help="previews on the base whose stack is not kept")
        orphans.add_argument("--keep", default="", help="stacks to keep, e.g. pr-1,pr-7")
        orphans.add_argument("--remove", action="store_true", help="drop the orphans too")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        try:
            # The preview first: a bad secret or URL is refused before anything connects.
            tenant = preview(options["database_url_secret"]) if action in ("create", "drop") else None
            with admin_connection() as admin, broker() as client:
                if action == "create" and tenant:
                    preview_tenant.create(admin, tenant, options["connection_limit"])
                    self.stdout.write(f"{tenant.key_prefix} database and role {tenant.role} ready")
                elif action == "drop" and tenant:
                    removed = preview_tenant.drop(admin, client, tenant)
                    self.stdout.write(f"{tenant.key_prefix} database, role and {removed} Redis keys dropped")
                else:
                    self.orphans(admin, client, preview_tenant.parse_keep(options["keep"]), options["remove"])
        except (TenantError, psycopg.Error, redis.RedisError, ClientError, BotoCoreError) as error:
            raise CommandError(f"preview_tenant {action}: {one_line(error)}") from error

    def orphans(self, admin: psycopg.Connection, client: redis.Redis, keep: set[int], remove: bool) -> None:
        found = preview_tenant.find_orphans(admin, client, keep)
        for number in found.numbers():
            self.stdout.write(("removing " if remove else "orphan ") + found.describe(number))
            if remove:
                preview_tenant.drop(admin, client, Tenant(number))
        self.stdout.write(f"{len(found.numbers())} orphan preview(s){' removed' if remove else ''}")


def admin_connection() -> psycopg.Connection:
    url = os.environ.get(ADMIN_DATABASE_URL)
    if not url:
        raise CommandError(f"preview_tenant: {ADMIN_DATABASE_URL} is not set (the base's admin connection)")
    return psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)


def broker() -> redis.Redis:
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=CONNECT_TIMEOUT_SECONDS,
        **(settings.REDIS_SSL_OPTIONS or {}),
    )


def preview(database_url_secret: str) -> Tenant:
    """The preview named by its DATABASE_URL: the secret's value if given, else the variable's."""
    database_url = (
        preview_tenant.read_secret(database_url_secret)
        if database_url_secret
        else os.environ.get(DATABASE_URL, "")
    )
    return Tenant.from_environment(database_url, settings.REDIS_KEY_PREFIX)


def one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__
