"""Two previews side by side on one PostgreSQL server and one Redis, as on a shared preview base.

Each preview gets its database and login role from the real `preview_tenant create` one-off task and
its slice of the broker from REDIS_KEY_PREFIX; then it migrates and runs web, a worker and Beat. The
scenario checks that signups and welcome emails work in each and that nothing crosses over (queues,
the Beat lock, the cache and with it the rate limit, the queue metrics), then destroys one preview
with `preview_tenant drop`: no key under its prefix, no database and no role of it are left, and the
other preview keeps working.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import boto3
import psycopg
import pytest
import requests

from infra import app_contract
from tests.e2e.services import ThrowawayPostgres, wait_until
from tests.e2e.stack import STARTUP_TIMEOUT_SECONDS, AppStack, Container

FIRST, SECOND = 9101, 9102
# Both previews see every signup come from one client address; each counts it in its own cache.
CLIENT = "198.18.7.7"
RATE_LIMIT = 4
# Per hour: no window of the limiter can end between the posts of the scenario (a minute could).
RATE_LIMIT_SETTING = f"{RATE_LIMIT}/h"
SIGNUPS = {FIRST: RATE_LIMIT, SECOND: 2}
HEARTBEAT_TASK = "signups.tasks.record_heartbeat"


@dataclasses.dataclass(frozen=True)
class PreviewDatabase:
    """Preview N's database and role on the shared server, where AppStack expects its `postgres`."""

    server: ThrowawayPostgres
    number: int

    @property
    def name(self) -> str:
        return f"pr_{self.number}"

    @property
    def url(self) -> str:
        return f"postgres://{self.name}:pw-{self.number}@127.0.0.1:{self.server.port}/{self.name}"

    def connect(self, database: str = "") -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1", port=self.server.port, user=self.name, dbname=database or self.name,
            autocommit=True, connect_timeout=5,
        )


class PreviewStack(AppStack):
    """The dev stack's containers run as preview N: its database URL, key prefix and metrics namespace."""

    def __init__(self, base: AppStack, number: int) -> None:
        log_dir = base.log_dir / f"pr-{number}"
        log_dir.mkdir(exist_ok=True)
        database = PreviewDatabase(base.postgres, number)
        super().__init__(
            base.containers, base.redis, database, base.smtp, log_dir, base.aws_endpoint, base.ecs_agent
        )
        self.number = number
        self.key_prefix = f"pr-{number}:"
        self.namespace = f"djcelery-pr-{number}/CeleryQueues"
        self.admin_url = f"postgres://postgres@127.0.0.1:{base.postgres.port}/postgres"

    def environment_for(self, spec, task: str = "task", **overrides: str) -> dict[str, str]:
        preview = {
            "REDIS_KEY_PREFIX": self.key_prefix,
            "ADMIN_DATABASE_URL": self.admin_url,
            app_contract.QUEUE_METRICS_NAMESPACE: self.namespace,
            app_contract.SIGNUP_RATE_LIMIT: RATE_LIMIT_SETTING,
        }
        return super().environment_for(spec, task, **{**preview, **overrides})

    def start(self, spec, label: str | None = None, **overrides: str) -> Container:
        return super().start(spec, f"pr-{self.number}-{label or spec.role}", **overrides)

    def publish_metrics_once(self) -> None:
        spec = self.containers.one("queue-metrics")
        once = self.start(dataclasses.replace(spec, command=(*spec.command, "--once")), label="metrics-once")
        assert once.popen.wait(STARTUP_TIMEOUT_SECONDS) == 0, once.describe()

    def periodic_runs(self) -> int:
        with self.postgres.connect() as connection:
            query = "SELECT count(*) FROM signups_periodicrun WHERE task_name = %s"
            return int(connection.execute(query, [HEARTBEAT_TASK]).fetchone()[0])


@pytest.fixture
def previews(app_stack: AppStack) -> Iterator[dict[int, PreviewStack]]:
    stacks = {number: PreviewStack(app_stack, number) for number in (FIRST, SECOND)}
    try:
        yield stacks
    finally:
        for stack in stacks.values():
            stack.stop_all()
        with app_stack.postgres.connect("postgres") as admin:
            for number in stacks:
                admin.execute(f"DROP DATABASE IF EXISTS pr_{number} WITH (FORCE)")
                admin.execute(f"DROP ROLE IF EXISTS pr_{number}")
        client = app_stack.redis.client()
        for stack in stacks.values():
            for key in client.scan_iter(match=f"{stack.key_prefix}*"):
                client.unlink(key)


def open_preview(stack: PreviewStack) -> None:
    """What `pulumi up` of a thin preview does (tenant task, release, web), then the preview's signups,
    all from one client address: the first preview's limit is used up (one more is refused) while the
    second still accepts that address, so each preview counts in its own cache. The signups wait in
    the queue until the workers start."""
    stack.run_command("preview_tenant", "create", "--connection-limit", "30")
    stack.migrate()
    stack.start_web()
    emails = sorted(emails_of(stack.number, SIGNUPS[stack.number]))
    over_limit = [f"over@pr-{stack.number}.example.com"] if len(emails) == RATE_LIMIT else []
    with requests.Session() as session:
        answers = [stack.post_signup(session, email, client=CLIENT).status for email in emails + over_limit]
    assert answers == [202] * len(emails) + [429] * len(over_limit), (stack.number, answers)
    stack.publish_metrics_once()


def emails_of(number: int, count: int) -> set[str]:
    return {f"user{n}@pr-{number}.example.com" for n in range(count)}


def published_waiting(stack: PreviewStack) -> float:
    """The email queue's QueueWaiting the preview's publisher sent to (moto's) CloudWatch."""
    cloudwatch = boto3.client(
        "cloudwatch", region_name=stack.containers.one("queue-metrics").environment[app_contract.AWS_REGION],
        endpoint_url=stack.aws_endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    metrics = cloudwatch.list_metrics(
        Namespace=stack.namespace, MetricName="QueueWaiting",
        Dimensions=[{"Name": "Queue", "Value": app_contract.EMAIL_QUEUE}],
    )["Metrics"]
    assert metrics, f"preview {stack.number} published no QueueWaiting for the email queue"
    points = cloudwatch.get_metric_statistics(
        Namespace=stack.namespace, MetricName="QueueWaiting", Dimensions=metrics[0]["Dimensions"],
        StartTime=datetime.now(UTC) - timedelta(minutes=5), EndTime=datetime.now(UTC) + timedelta(minutes=1),
        Period=60, Statistics=["Maximum"],
    )["Datapoints"]
    return max(point["Maximum"] for point in points)


def keys_under(stack: PreviewStack) -> list[str]:
    return list(stack.redis.client().scan_iter(match=f"{stack.key_prefix}*"))


def test_two_previews_share_one_server_and_one_redis_without_cross_talk(
    previews: dict[int, PreviewStack], app_stack: AppStack
) -> None:
    first, second = previews[FIRST], previews[SECOND]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(open_preview, (first, second)))

    # Queues and metrics: each publisher counted its own preview's waiting welcome emails.
    assert {number: published_waiting(stack) for number, stack in previews.items()} == SIGNUPS
    for stack in (first, second):
        stack.start_worker()
        stack.start(stack.containers.one("beat"))
    for number, stack in previews.items():
        wait_until(
            lambda stack=stack, number=number: set(stack.signup_statuses().items())
            == {(email, "sent") for email in emails_of(number, SIGNUPS[number])},
            30, f"preview {number}: welcome emails not all sent", stack.processes,
        )
        # Each preview's Beat holds its own lock and runs its own schedule.
        wait_until(stack.periodic_runs, 15, f"preview {number}: Beat never ran", stack.processes)
        assert app_stack.redis.client().exists(f"{stack.key_prefix}redbeat::lock")
    delivered = app_stack.smtp.deliveries()
    for number in previews:
        assert all(delivered[email] == 1 for email in emails_of(number, SIGNUPS[number])), delivered

    first.stop_all()
    first.run_command("preview_tenant", "drop")

    assert keys_under(first) == [], "keys left under the dropped preview's prefix"
    with app_stack.postgres.connect("postgres") as admin:
        left = admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'pr\\_91%' "
            "UNION ALL SELECT rolname FROM pg_roles WHERE rolname LIKE 'pr\\_91%'"
        ).fetchall()
    assert sorted(name for (name,) in left) == ["pr_9102", "pr_9102"]
    assert keys_under(second), "the other preview's keys went too"
    second.sign_up(["after-drop@pr-9102.example.com"])
    wait_until(
        lambda: second.signup_statuses().get("after-drop@pr-9102.example.com") == "sent",
        20, "the remaining preview stopped working", second.processes,
    )
