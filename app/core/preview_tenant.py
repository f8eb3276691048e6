"""A preview's tenancy on its base: its database and login role on the base's PostgreSQL, and its
slice of the base's Redis (every key under its REDIS_KEY_PREFIX).

Preview N's role and database are both `pr_<N>` and its key prefix is `pr-<N>:` (the preview
contract, docs/delivery.md#previews). Everything here converges: creating twice, or dropping
what is already gone, succeeds. Statements run on the base's admin connection, in autocommit
(CREATE/DROP DATABASE cannot run in a transaction), with identifiers quoted by psycopg.sql.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import boto3
import psycopg
import redis
from psycopg import sql

ROLE_PATTERN = re.compile(r"pr_([0-9]+)")
KEY_PATTERN = re.compile(rb"pr-([0-9]+):")
# arn:<partition>:secretsmanager:<region>:<account>:secret:<name>-<6 random characters> (Secrets
# Manager user guide, "Permissions reference for AWS Secrets Manager": secret ARN format).
SECRET_ARN_PATTERN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):secretsmanager:(?P<region>[a-z]{2}(?:-[a-z]+)+-[0-9]+):"
    r"(?P<account>[0-9]{12}):secret:(?P<name>[A-Za-z0-9/_+=.@-]+)"
)
# Keys unlinked per round trip when a prefix is emptied.
SCAN_BATCH = 500


class TenantError(Exception):
    """A request the tenant commands refuse (the message says which input and why)."""


@dataclass(frozen=True)
class Tenant:
    number: int
    password: str = ""

    @property
    def role(self) -> str:
        return f"pr_{self.number}"

    @property
    def database(self) -> str:
        return self.role

    @property
    def key_prefix(self) -> str:
        return f"pr-{self.number}:"

    @classmethod
    def from_environment(cls, database_url: str, key_prefix: str) -> Tenant:
        """The preview whose DATABASE_URL and REDIS_KEY_PREFIX these are; anything but pr_<N> /
        pr_<N> / pr-<N>: is refused, so a misconfigured task can never drop a base's own database."""
        url = urlsplit(database_url)
        role, database = unquote(url.username or ""), unquote(url.path.lstrip("/"))
        match = ROLE_PATTERN.fullmatch(role)
        if match is None or database != role or key_prefix != f"pr-{match[1]}:":
            raise TenantError(
                "DATABASE_URL's user and database must both be pr_<N> and REDIS_KEY_PREFIX must be "
                f"pr-<N>: for the same N; got user {role!r}, database {database!r}, prefix {key_prefix!r}"
            )
        return cls(int(match[1]), unquote(url.password or ""))


def secret_region(arn: str) -> str:
    """The region of a Secrets Manager secret ARN (the client must call that region's endpoint)."""
    match = SECRET_ARN_PATTERN.fullmatch(arn)
    if match is None:
        raise TenantError(
            "--database-url-secret takes a Secrets Manager secret ARN "
            f"(arn:aws:secretsmanager:<region>:<account>:secret:<name>); got {arn!r}"
        )
    return match["region"]


def read_secret(arn: str) -> str:
    """The string value of the secret `arn` (the preview's DATABASE_URL), read with the task role."""
    client = boto3.client("secretsmanager", region_name=secret_region(arn))
    value = client.get_secret_value(SecretId=arn).get("SecretString")
    if not value:
        raise TenantError(f"secret {arn} holds no string value")
    return str(value)


def create(admin: psycopg.Connection, tenant: Tenant, connection_limit: int) -> None:
    """Role (login, password, connection limit), database owned by it, CONNECT for it alone."""
    if connection_limit < 1:
        raise TenantError(f"--connection-limit must be at least 1, got {connection_limit}")
    role, database = sql.Identifier(tenant.role), sql.Identifier(tenant.database)
    exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [tenant.role]).fetchone()
    admin.execute(
        sql.SQL("{verb} ROLE {role} WITH LOGIN PASSWORD {password} CONNECTION LIMIT {limit}").format(
            verb=sql.SQL("ALTER" if exists else "CREATE"),
            role=role,
            password=sql.Literal(tenant.password),
            limit=sql.Literal(connection_limit),
        )
    )
    # RDS's master user is no superuser: it may give a database to the role only as a member of it.
    admin.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(role))
    owner = admin.execute(
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [tenant.database]
    ).fetchone()
    if owner is None:
        admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(database, role))
    elif owner[0] != tenant.role:
        admin.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(database, role))
    # PUBLIC may connect to a new database by default: no preview may open another's.
    admin.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(database))
    admin.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(database, role))


def drop(admin: psycopg.Connection, broker: redis.Redis, tenant: Tenant) -> int:
    """Database (its sessions ended), role and every key under the prefix; the keys removed."""
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(tenant.database)))
    admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(tenant.role)))
    return delete_keys(broker, tenant.key_prefix)


def delete_keys(broker: redis.Redis, prefix: str) -> int:
    """UNLINK every key under `prefix` (SCAN MATCH, in batches: never KEYS on a shared server)."""
    if not prefix:
        raise TenantError("refusing to delete the keys of an empty prefix (that is every key)")
    removed = 0
    for batch in _batches(broker.scan_iter(match=f"{prefix}*", count=SCAN_BATCH), SCAN_BATCH):
        removed += broker.unlink(*batch)
    return removed


@dataclass
class Orphans:
    """Previews with a database, a role or keys on the base but no open pull request."""

    databases: set[int] = field(default_factory=set)
    roles: set[int] = field(default_factory=set)
    keys: dict[int, int] = field(default_factory=dict)  # preview -> keys under its prefix

    def numbers(self) -> list[int]:
        return sorted(self.databases | self.roles | set(self.keys))

    def describe(self, number: int) -> str:
        found = [
            *([f"database pr_{number}"] if number in self.databases else []),
            *([f"role pr_{number}"] if number in self.roles else []),
            *([f"{self.keys[number]} Redis keys under pr-{number}:"] if number in self.keys else []),
        ]
        return f"pr-{number}: " + ", ".join(found)


def parse_keep(text: str) -> set[int]:
    """`pr-1,pr-7` (the previews of open pull requests) -> {1, 7}."""
    kept = set()
    for item in filter(None, (part.strip() for part in text.split(","))):
        match = re.fullmatch(r"pr-([0-9]+)", item)
        if match is None:
            raise TenantError(f"--keep takes stack names like pr-1,pr-7; got {item!r}")
        kept.add(int(match[1]))
    return kept


def find_orphans(admin: psycopg.Connection, broker: redis.Redis, keep: set[int]) -> Orphans:
    orphans = Orphans(
        databases=_numbers(admin, "SELECT datname FROM pg_database") - keep,
        roles=_numbers(admin, "SELECT rolname FROM pg_roles") - keep,
    )
    for key in broker.scan_iter(match="pr-*", count=SCAN_BATCH):
        match = KEY_PATTERN.match(key)
        if match is not None and int(match[1]) not in keep:
            number = int(match[1])
            orphans.keys[number] = orphans.keys.get(number, 0) + 1
    return orphans


def _numbers(admin: psycopg.Connection, query: str) -> set[int]:
    names = (row[0] for row in admin.execute(query))
    return {int(match[1]) for match in map(ROLE_PATTERN.fullmatch, names) if match is not None}


def _batches(items: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
