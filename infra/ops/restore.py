"""Point-in-time restore of a stack's database into a new RDS instance, and how the stack adopts it.

`python -m infra.ops restore <stack> --to 2026-12-01T11:55:00Z` (or `--latest`) restores the
instance the stack uses into `<stack database>-r<YYYYMMDDHHMM>` (the restore time, UTC) with the
stack's own network, security group, parameter group, class, Multi-AZ setting, storage type, tags
and deletion protection (the KMS key follows the source), waits until it is available, and prints
the configuration change that points the stack at it (`dbRestoredIdentifier`): the next
`pulumi up` imports it, brings every other setting in line with the program (log exports,
monitoring, Performance Insights, password), rewrites DATABASE_URL, restarts every service, and
deletes the instance it replaced (final snapshot kept). The program refuses an identifier that is
not a restore of the stack's own database.

Everything here is a plain function over a boto3 RDS client passed in.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from infra.data.config import RESTORED_SUFFIX
from infra.ecs_tasks import client_error_text

POLL_SECONDS = 30.0
DEFAULT_TIMEOUT_SECONDS = 90 * 60  # a restore replays the transaction logs: large databases take long
RESTORED_SUFFIX_FORMAT = "-r%Y%m%d%H%M"
# An instance in one of these will never become available on its own.
FAILED_STATES = frozenset(
    {"failed", "incompatible-restore", "incompatible-parameters", "incompatible-network"}
)


class RestoreError(Exception):
    """A restore that cannot be made or did not finish; the message says what to do."""


def parse_restore_time(text: str) -> datetime:
    """An ISO 8601 time with its UTC offset (`2026-12-01T11:55:00Z`), as UTC."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise RestoreError(f"--to {text!r} is not an ISO 8601 time like 2026-12-01T11:55:00Z") from None
    if parsed.tzinfo is None:
        raise RestoreError(f"--to {text!r} has no time zone: add Z for UTC, e.g. {text}Z")
    return parsed.astimezone(UTC)


def stack_database(identifier: str) -> str:
    """The stack's own instance: a restored one's identifier less its `-r<time>` suffix."""
    return re.sub(f"{RESTORED_SUFFIX}$", "", identifier)


def restored_identifier(source_identifier: str, restore_time: datetime) -> str:
    return stack_database(source_identifier) + restore_time.astimezone(UTC).strftime(RESTORED_SUFFIX_FORMAT)


@dataclass(frozen=True)
class Source:
    """The instance to restore, as RDS describes it."""

    identifier: str
    described: Mapping[str, Any]

    @property
    def latest_restorable(self) -> datetime | None:
        value = self.described.get("LatestRestorableTime")
        return value.astimezone(UTC) if isinstance(value, datetime) else None


def describe_source(rds: Any, identifier: str) -> Source:
    try:
        [described] = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"]
    except ClientError as error:
        if error.response["Error"]["Code"] == "DBInstanceNotFound":
            raise RestoreError(
                f"the stack's database {identifier} does not exist in this account and region "
                "(destroyed, or another region?)"
            ) from None
        raise
    if not described.get("BackupRetentionPeriod"):
        raise RestoreError(
            f"{identifier} keeps no automated backups (BackupRetentionPeriod 0): nothing to restore"
        )
    return Source(identifier, described)


def earliest_restorable(rds: Any, source: Source) -> datetime | None:
    """The start of the restore window, from the instance's automated backups (None if unknown)."""
    backups = rds.describe_db_instance_automated_backups(DBInstanceIdentifier=source.identifier)
    starts = [
        backup["RestoreWindow"]["EarliestTime"]
        for backup in backups.get("DBInstanceAutomatedBackups", [])
        if isinstance((backup.get("RestoreWindow") or {}).get("EarliestTime"), datetime)
    ]
    return min(starts).astimezone(UTC) if starts else None


def check_window(restore_time: datetime, earliest: datetime | None, latest: datetime | None) -> None:
    window = f"{_iso(earliest) if earliest else 'the oldest backup'} to {_iso(latest) if latest else 'now'}"
    if latest is not None and restore_time > latest:
        raise RestoreError(
            f"{_iso(restore_time)} is after the latest restorable time: the restore window is {window} "
            "(use --latest for the most recent point)"
        )
    if earliest is not None and restore_time < earliest:
        raise RestoreError(f"{_iso(restore_time)} is before the restore window ({window})")


def restore_request(source: Source, target: str, restore_time: datetime | None) -> dict[str, Any]:
    """RestoreDBInstanceToPointInTime arguments: the source's placement and settings. Log exports
    are left off: the program creates their log groups (with retention) before it turns them on."""
    described = source.described
    request: dict[str, Any] = {
        "SourceDBInstanceIdentifier": source.identifier,
        "TargetDBInstanceIdentifier": target,
        "DBInstanceClass": described["DBInstanceClass"],
        "MultiAZ": bool(described.get("MultiAZ")),
        "PubliclyAccessible": False,
        "AutoMinorVersionUpgrade": True,
        "CopyTagsToSnapshot": True,
        "DeletionProtection": bool(described.get("DeletionProtection")),
        "EnableIAMDatabaseAuthentication": True,
        "VpcSecurityGroupIds": [
            group["VpcSecurityGroupId"] for group in described.get("VpcSecurityGroups", [])
        ],
        "Tags": list(described.get("TagList", [])),
    }
    if described.get("StorageType"):
        request["StorageType"] = described["StorageType"]
    if (described.get("DBSubnetGroup") or {}).get("DBSubnetGroupName"):
        request["DBSubnetGroupName"] = described["DBSubnetGroup"]["DBSubnetGroupName"]
    groups = described.get("DBParameterGroups") or []
    if groups:
        request["DBParameterGroupName"] = groups[0]["DBParameterGroupName"]
    if restore_time is None:
        request["UseLatestRestorableTime"] = True
    else:
        request["RestoreTime"] = restore_time
    return request


def start_restore(rds: Any, request: Mapping[str, Any]) -> None:
    try:
        rds.restore_db_instance_to_point_in_time(**request)
    except ClientError as error:
        code = error.response["Error"]["Code"]
        target = request["TargetDBInstanceIdentifier"]
        if code == "DBInstanceAlreadyExists":
            raise RestoreError(
                f"{target} exists already: a restore to this minute was made before. Use it, or delete it "
                f"first: aws rds delete-db-instance --db-instance-identifier {target} --skip-final-snapshot"
            ) from None
        raise RestoreError(f"RDS refused the restore: {client_error_text(error)}") from None


def wait_until_available(
    rds: Any,
    identifier: str,
    *,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    progress: Callable[[str], None] = lambda _: None,
) -> None:
    deadline, last = clock() + timeout_seconds, ""
    while True:
        [described] = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"]
        status = str(described.get("DBInstanceStatus"))
        if status != last:
            progress(status)
            last = status
        if status == "available":
            return
        if status in FAILED_STATES:
            raise RestoreError(
                f"the restored instance {identifier} is {status}; see its events in the RDS console"
            )
        if clock() >= deadline:
            raise RestoreError(
                f"{identifier} is still {status} after {timeout_seconds / 60:.0f} minutes; it keeps going. "
                f"Wait for it (aws rds wait db-instance-available --db-instance-identifier {identifier}), "
                "then make the configuration change below"
            )
        sleep(POLL_SECONDS)


def instance_urn(stack: str, project: str, identifier: str) -> str:
    """The URN the program gives the instance `identifier` (infra.data.database.instance_logical_name)."""
    suffix = identifier.removeprefix(stack_database(identifier))
    parents = f"{project}:index:Database$aws:rds/instance:Instance"
    return f"urn:pulumi:{stack}::{project}::{parents}::database-postgres{suffix}"


def next_steps(stack: str, project: str, source: Source, target: str, *, protected: bool) -> str:
    """The configuration change that points the stack at `target`, with what a protected stack
    needs first so that `pulumi up` may delete the instance it replaces."""
    previous, lines = source.identifier, []
    if protected:
        lines += [
            f"# {previous} is protected: let the next `pulumi up` delete it (a final snapshot is kept,",
            "# and its automated backups stay restorable for their retention period):",
            shlex.join(
                [
                    "pulumi",
                    "state",
                    "unprotect",
                    instance_urn(stack, project, previous),
                    "--stack",
                    stack,
                    "--yes",
                ]
            ),
        ]
    if source.described.get("DeletionProtection"):
        lines.append(
            shlex.join(
                [
                    *("aws", "rds", "modify-db-instance", "--db-instance-identifier", previous),
                    *("--no-deletion-protection", "--apply-immediately"),
                ]
            )
        )
    lines += [
        "# Point the stack at the restored instance; `pulumi up` adopts it, restarts every service",
        f"# with the new DATABASE_URL and then deletes {previous}:",
        shlex.join(["pulumi", "config", "set", "dbRestoredIdentifier", target, "--stack", stack]),
        shlex.join(["pulumi", "up", "--stack", stack]),
    ]
    return "\n".join(lines)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
