"""How many connections the stack's database and broker accept, by instance class and node type.

PostgreSQL on RDS: `max_connections` defaults to `LEAST({DBInstanceClassMemory/9531392}, 5000)` (RDS
user guide and AWS Prescriptive Guidance, "max_connections"), where DBInstanceClassMemory is the
class's memory less what the operating system and RDS's own processes hold, a number AWS does not
publish. The estimate here takes the class's memory from AWS's instance class table and keeps
back the larger of 300 MiB and a tenth of it, which lands within a few connections below the values
RDS reports (db.t4g.micro about 80, db.t4g.small about 190, db.t4g.medium about 405): a budget
planned against it errs on the safe side. PostgreSQL keeps `superuser_reserved_connections` (3)
of them for superusers, which the app's user is not.

ElastiCache (Redis OSS and Valkey): `maxclients` is 65,000 on every node type and cannot be changed
(ElastiCache user guide, engine-specific parameters).
"""

from __future__ import annotations

import re

MEMORY_PER_CONNECTION_BYTES = 9_531_392
MAX_CONNECTIONS_CAP = 5000
SUPERUSER_RESERVED_CONNECTIONS = 3
MIB = 2**20
BROKER_MAX_CLIENTS = 65_000
# Memory (GiB) by size in each family of AWS's "DB instance class types" hardware tables.
_BURSTABLE = {"micro": 1, "small": 2, "medium": 4, "large": 8, "xlarge": 16, "2xlarge": 32}
_GENERAL_PURPOSE = {
    "large": 8,
    "xlarge": 16,
    "2xlarge": 32,
    "4xlarge": 64,
    "8xlarge": 128,
    "12xlarge": 192,
    "16xlarge": 256,
    "24xlarge": 384,
}
_MEMORY_OPTIMIZED = {size: 2 * gib for size, gib in _GENERAL_PURPOSE.items()}
_FAMILIES = (
    (re.compile(r"t[34]g?"), _BURSTABLE),
    (re.compile(r"m[5-8][gia]?d?"), _GENERAL_PURPOSE),
    (re.compile(r"r[5-8][gia]?d?"), _MEMORY_OPTIMIZED),
)


def instance_memory_gib(instance_class: str) -> int | None:
    """The memory of a `db.<family>.<size>` class, or None for a class the table does not know."""
    match = re.fullmatch(r"db\.([a-z0-9]+)\.([a-z0-9]+)", instance_class)
    if match is None:
        return None
    family, size = match.groups()
    for pattern, sizes in _FAMILIES:
        if pattern.fullmatch(family):
            return sizes.get(size)
    return None


def database_max_connections(instance_class: str) -> int | None:
    """RDS's default `max_connections` for the class, estimated (see the module's notes)."""
    gib = instance_memory_gib(instance_class)
    if gib is None:
        return None
    memory = gib * 1024 * MIB
    usable = memory - max(300 * MIB, memory // 10)
    return min(usable // MEMORY_PER_CONNECTION_BYTES, MAX_CONNECTIONS_CAP)


def app_connection_limit(instance_class: str, reserve: int) -> int | None:
    """What the app's processes may hold: max_connections less the superusers' slots and `reserve`
    (people, one-off tasks and migrations)."""
    most = database_max_connections(instance_class)
    return None if most is None else most - SUPERUSER_RESERVED_CONNECTIONS - reserve
