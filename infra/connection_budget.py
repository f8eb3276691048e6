"""The stack's largest configuration against what its database and broker accept.

Every process of the app may hold connections at once when the stack is at its maxima: each web
thread a PostgreSQL connection (`CONN_MAX_AGE` keeps it), each worker process one and each worker's
main process one more, Beat and the queue-metrics publisher one each, and the release one while it
runs. Past the database's limit, new connections fail with "remaining connection slots are
reserved" in whichever process asks next. The stack config refuses such a stack before anything is
declared, naming the numbers and the ways out; `python -m bench.cost` prints the budget per stack.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.data.config import DatabaseConfig
from infra.data.connections import BROKER_MAX_CLIENTS, app_connection_limit
from infra.scheduler.config import BeatConfig
from infra.web.config import WebConfig
from infra.workers.config import WorkersConfig

# Connections kept back for people (psql, `infra.ops manage`) and the release's one-off tasks.
ADMIN_RESERVE = 5
# Broker connections a process may hold (an assumption, generous): a web thread publishes through
# Celery's producer pool and reads the cache; a worker process consumes, acknowledges and writes
# results; each process has a few more of its own (heartbeat, events, the Beat lock).
BROKER_CONNECTIONS_PER_THREAD = 2
BROKER_CONNECTIONS_PER_PROCESS = 3


@dataclass(frozen=True)
class ConnectionDemand:
    """Connections the app may hold at once, by who holds them."""

    web: int
    pools: dict[str, int]
    scheduler: int  # Beat and the publisher beside it
    release: int = 1  # the migrate task, while a release runs
    scheduler_label: str = "Beat and publisher"

    @property
    def total(self) -> int:
        return self.web + sum(self.pools.values()) + self.scheduler + self.release

    def describe(self) -> str:
        pools = ", ".join(f"pool {name} {count}" for name, count in self.pools.items())
        return f"web {self.web}, {pools}, {self.scheduler_label} {self.scheduler}, release {self.release}"


def database_demand(web: WebConfig, workers: WorkersConfig, beat: BeatConfig) -> ConnectionDemand:
    return ConnectionDemand(
        web=web.scaling.max_count * web.threads_per_task,
        pools={pool.name: pool.scaling.max_count * (pool.concurrency + 1) for pool in workers.pools},
        scheduler=2 if beat.enabled else 1,
    )


def broker_demand(web: WebConfig, workers: WorkersConfig, beat: BeatConfig) -> int:
    web_clients = web.scaling.max_count * (
        web.threads_per_task * BROKER_CONNECTIONS_PER_THREAD
        + web.gunicorn_workers * BROKER_CONNECTIONS_PER_PROCESS
    )
    worker_clients = sum(
        pool.scaling.max_count * (pool.concurrency + 1) * BROKER_CONNECTIONS_PER_PROCESS
        for pool in workers.pools
    )
    return web_clients + worker_clients + (2 if beat.enabled else 1) * BROKER_CONNECTIONS_PER_PROCESS


def database_problem(
    database: DatabaseConfig, web: WebConfig, workers: WorkersConfig, beat: BeatConfig
) -> str | None:
    """Why the stack at its maxima does not fit its database class, or None when it does (or the
    class is not one the table knows)."""
    limit = app_connection_limit(database.instance_class, ADMIN_RESERVE)
    demand = database_demand(web, workers, beat)
    if limit is None or demand.total <= limit:
        return None
    return (
        f"a class whose connections hold the stack at its maxima: {demand.total} connections "
        f"({demand.describe()}) against about {limit} that {database.instance_class} leaves the app "
        "(RDS max_connections less superuser and admin slots). Ways out: a bigger dbInstanceClass, "
        "fewer gunicornThreads or gunicornWorkers, a lower webMaxCount or pool maxCount/concurrency, "
        "or a connection pooler (RDS Proxy) in front of the database"
    )


def broker_problem(web: WebConfig, workers: WorkersConfig, beat: BeatConfig) -> str | None:
    clients = broker_demand(web, workers, beat)
    if clients <= BROKER_MAX_CLIENTS:
        return None
    return (
        f"at most {BROKER_MAX_CLIENTS} broker clients (ElastiCache maxclients); the stack at its maxima "
        f"may open about {clients}: lower webMaxCount or the pools' maxCount"
    )


def preview_base_problem(database: DatabaseConfig, capacity: int, connection_limit: int) -> str | None:
    """Why a preview base's database cannot hold `capacity` preview roles at their CONNECTION LIMIT
    (plus the admin slots its tenant tasks and people use), or None when it can."""
    limit = app_connection_limit(database.instance_class, ADMIN_RESERVE)
    demand = capacity * connection_limit
    if limit is None or demand <= limit:
        return None
    return (
        f"a class that holds previewCapacity x previewConnectionLimit = {capacity} x {connection_limit} "
        f"= {demand} connections; {database.instance_class} leaves the previews about {limit} (RDS "
        "max_connections less superuser and admin slots). Ways out: a bigger dbInstanceClass, a lower "
        "previewCapacity or previewConnectionLimit"
    )


def preview_demand(web: WebConfig, worker_concurrency: int, beat: BeatConfig) -> ConnectionDemand:
    """A thin preview's one task (infra/preview/app_service.py): one web task, one worker of
    `worker_concurrency` processes on every queue and Beat; no publisher, nothing scales it."""
    return ConnectionDemand(
        web=web.threads_per_task,
        pools={"every queue": worker_concurrency + 1},
        scheduler=1 if beat.enabled else 0,
        scheduler_label="Beat",
    )


def preview_problem(connection_limit: int, demand: ConnectionDemand) -> str | None:
    """Why a thin preview's processes do not fit its role's CONNECTION LIMIT, or None."""
    if demand.total <= connection_limit:
        return None
    return (
        f"at least the {demand.total} connections the preview's task may hold ({demand.describe()}); "
        "or lower gunicornWorkers or gunicornThreads in the preview's stack file"
    )
