"""Workers measure each task's run time and queue wait and leave per-pool summaries in Redis."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis
from django.test import Client

from infra import app_contract
from queuemetrics import schema, task_stats
from queuemetrics.task_stats import FLUSH_SECONDS, TaskStatsRecorder
from testkit.processes import container_env, free_port, start_worker, wait_for
from testkit.smtp import SMTPServer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    prefix = f"statstest-{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)


def request(pool: str = "email", sent_at: float | None = None, eta: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(hostname=f"{pool}@ip-10-0-1-2", sent_at=sent_at, eta=eta)


def records(redis_url: str, key: str) -> schema.TaskStats:
    total = schema.TaskStats()
    for record in redis.Redis.from_url(redis_url).lrange(key, 0, -1):
        total.merge(schema.TaskStats.decode(record))
    return total


def test_samples_are_summed_per_pool_and_pushed_at_most_every_flush_interval(redis_url: str, prefix: str):
    clock, wall = Clock(), Clock()
    recorder = TaskStatsRecorder(lambda: redis.Redis.from_url(redis_url), prefix, clock, wall)
    key = schema.task_stats_key("email", prefix)

    recorder.task_started("t1", request(sent_at=wall.now - 2.5))
    clock.now += 0.25
    recorder.task_finished("t1", request())
    first = records(redis_url, key)
    assert (first.run.count, first.run.total) == (1, 0.25), "the first task after a quiet spell is pushed"
    assert (first.wait.count, first.wait.total) == (1, 2.5)

    for index in range(3):  # within the flush interval: kept in memory
        recorder.task_started(f"t{index + 2}", request(sent_at=wall.now, eta="2026-12-01T12:00:00"))
        clock.now += 1
        recorder.task_finished(f"t{index + 2}", request())
    assert records(redis_url, key).run.count == 1
    clock.now += FLUSH_SECONDS
    recorder.task_started("t5", request(pool="default"))
    recorder.task_finished("t5", request(pool="default"))
    pushed = records(redis_url, key)
    assert (pushed.run.count, pushed.run.maximum) == (4, 1.0)
    assert pushed.wait.count == 1, "a countdown/ETA task's wait is on purpose: not a sample"
    assert records(redis_url, schema.task_stats_key("default", prefix)).run.count == 1
    assert redis.Redis.from_url(redis_url).ttl(key) > 0, "an undrained list expires"


def test_a_redis_outage_keeps_the_samples_for_later_and_never_raises(redis_url: str, prefix: str, caplog):
    clock = Clock()
    url = [f"redis://127.0.0.1:{free_port()}/0"]  # nothing listens here yet
    recorder = TaskStatsRecorder(lambda: task_stats.redis_client(url[0]), prefix, clock)
    recorder.task_started("t1", request())
    clock.now += 2
    recorder.task_finished("t1", request())
    assert "cannot record task statistics" in caplog.text
    assert recorder.pending["email"].run.count == 1

    url[0] = redis_url
    recorder._client = None  # the outage is over: a new connection
    clock.now += task_stats.COOL_DOWN_SECONDS
    recorder.task_started("t2", request())
    recorder.task_finished("t2", request())
    assert records(redis_url, schema.task_stats_key("email", prefix)).run.total == 2


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_leaves_the_run_time_and_wait_of_its_tasks(
    test_database_url: str, redis_url: str, smtp_server: SMTPServer, tmp_path: Path, broker
):
    key = schema.task_stats_key("test")  # the worker's node name is test@<host>
    broker.delete(key)
    env = container_env(
        test_database_url,
        redis_url,
        EMAIL_URL=f"smtp://127.0.0.1:{smtp_server.port}",
        WORKER_HEARTBEAT_FILE=str(tmp_path / "heartbeat"),
    )
    worker = start_worker(env, queues=app_contract.QUEUES)
    try:
        smtp_server.release.clear()
        ids = [
            Client()
            .post("/api/signups", {"email": f"u{n}@example.com"}, content_type="application/json")
            .json()["id"]
            for n in range(3)
        ]
        wait_for(smtp_server.data_received.is_set, 20, f"no delivery; {worker.describe()}")
        time.sleep(0.5)  # the held delivery itself, while the other tasks wait behind it
        smtp_server.release.set()
        wait_for(
            lambda: all(Client().get(f"/api/signups/{i}").json()["status"] == "sent" for i in ids),
            20,
            worker.describe(),
        )
    finally:
        worker.stop()  # pool processes leave their last samples as they exit
    measured = records(redis_url, key)
    broker.delete(key)
    assert measured.run.count == 3, worker.describe()
    assert measured.run.maximum >= 0.5, "the held delivery ran at least half a second"
    assert measured.wait.count == 3
    assert measured.wait.maximum >= 0.5, "the last task waited behind the held one"
