"""A worker pool's release canary, with real processes: two versions of the app side by side.

The pool's running version is a worker started from the pool's task definition. The new version is
the canary, started by the canary provider itself (infra/workers/canary_provider.py) through RunTask
(tests/e2e/canary_aws.py answers it with a local container): the same task definition with the new
image's digest. A version whose tasks fail is made by configuration of the same code: its
DATABASE_URL names a database that does not exist, so every welcome email it takes fails on the
database and asks for a retry. The provider's own verdict (canary.py) must stop the release within
the window, the provider must stop the canary (StopTask), and every accepted signup must still get
its email once (tests/e2e/ledger.py). A canary of a healthy version passes, and its tasks are done once too.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from infra import app_contract
from infra.workers.canary import CanaryError
from infra.workers.canary_provider import WorkerCanaryProvider
from tests.e2e.canary_aws import LocalCanary
from tests.e2e.ledger import Scenario
from tests.e2e.services import wait_until
from tests.e2e.stack import SHORT_TIMINGS, UNACKED_RESTORE_INTERVAL_SECONDS, AppStack

NEW_DIGEST = "sha256:" + "e" * 64
OLD = "arn:aws:ecs:us-east-1:123456789012:task-definition/djcelery-dev-worker-default:7"
NEW = "arn:aws:ecs:us-east-1:123456789012:task-definition/djcelery-dev-worker-default:8"
STOP_TIMEOUT = int(SHORT_TIMINGS[app_contract.CELERY_WORKER_STOP_TIMEOUT])
VISIBILITY_TIMEOUT = int(SHORT_TIMINGS[app_contract.CELERY_VISIBILITY_TIMEOUT])
WINDOW_SECONDS = 30
SIGNUPS = 30
SETTLE_SECONDS = VISIBILITY_TIMEOUT + UNACKED_RESTORE_INTERVAL_SECONDS + 60


def canary_props(stack: AppStack) -> dict[str, Any]:
    """The canary resource's inputs, as the program declares them for the pool (infra/workers/pool.py)."""
    spec = stack.worker_spec()
    return {
        "pool": spec.option("--hostname").split("@")[0],
        "cluster": "arn:aws:ecs:us-east-1:123456789012:cluster/djcelery-dev",
        "service": f"djcelery-dev-worker-{spec.option('--hostname').split('@')[0]}",
        "task_definition_arn": NEW,
        "container_name": spec.name,
        "subnet_ids": ["subnet-a"],
        "security_group_ids": ["sg-app"],
        "assign_public_ip": True,
        "log_group_name": "/ecs/djcelery-dev/worker-default",
        "image_digest": NEW_DIGEST,
        "metric_namespace": "djcelery/dev/CeleryQueues",
        "region": "us-east-1",
        "window_minutes": WINDOW_SECONDS / 60,
        "max_failure_percent": 20,
        "stop_timeout_seconds": STOP_TIMEOUT,
    }


def start_release(scenario: Scenario, canary: LocalCanary, executor: ThreadPoolExecutor) -> Future[Any]:
    """`pulumi up` reaching the pool's canary: the provider's update, while the old version serves."""
    provider = WorkerCanaryProvider(clients=canary.clients, poll_interval_seconds=1.0)
    props = canary_props(scenario.stack)
    release = executor.submit(provider.update, "canary", {**props, "task_definition_arn": OLD}, props)
    wait_until(lambda: canary.container is not None, 30, "the provider started no canary", [])
    assert canary.container is not None
    scenario.processes.append(canary.container)
    canary.container.wait_for_log("ready.")
    return release


def test_a_canary_whose_tasks_fail_stops_the_release_in_its_window_and_loses_nothing(
    scenario: Scenario,
) -> None:
    stack = scenario.stack
    scenario.start_worker()  # the pool runs the previous version
    missing_database = stack.postgres.url.rsplit("/", 1)[0] + "/no_such_database"
    bad_version = {app_contract.IMAGE_DIGEST: NEW_DIGEST, app_contract.DATABASE_URL: missing_database}
    canary = LocalCanary(stack, stack.worker_spec(), bad_version, OLD, STOP_TIMEOUT)
    with ThreadPoolExecutor(1) as executor:
        release = start_release(scenario, canary, executor)
        started = time.monotonic()
        scenario.sign_up(SIGNUPS, prefix="canary")
        with pytest.raises(CanaryError) as failed:
            release.result(timeout=WINDOW_SECONDS + STOP_TIMEOUT + 60)

    message = str(failed.value)
    assert "Worker canary of pool 'default' failed" in message, message
    assert "Failure rate 100 %" in message and "OperationalError" in message, message
    assert "keeps running its previous image" in message
    assert canary.stop_requested_at is not None and canary.stop_requested_at - started < WINDOW_SECONDS, (
        "the failing canary must be stopped within its window"
    )
    # StopTask: SIGTERM (Celery's warm shutdown), SIGKILL at the stop timeout. A worker whose tasks
    # are retrying (publishing) at SIGTERM sometimes outlives the stop timeout (reported; the worker's
    # shutdown is core.celery_lifecycle's): what it held then comes back after the visibility timeout.
    wait_until(
        lambda: canary.stop is not None, STOP_TIMEOUT + 5, "the canary did not stop", [canary.container]
    )
    scenario.settle_emails(timeout=SETTLE_SECONDS)  # the old version does every email, once


def test_a_canary_of_a_healthy_version_passes_and_does_its_share_once(scenario: Scenario) -> None:
    stack = scenario.stack
    scenario.start_worker()
    new_version = {app_contract.IMAGE_DIGEST: NEW_DIGEST}
    canary = LocalCanary(stack, stack.worker_spec(), new_version, OLD, STOP_TIMEOUT)
    with ThreadPoolExecutor(1) as executor:
        release = start_release(scenario, canary, executor)
        scenario.sign_up(SIGNUPS, prefix="canary")
        result = release.result(timeout=WINDOW_SECONDS + STOP_TIMEOUT + 60)

    outs = result.outs
    assert outs["verdict"].startswith("passed:"), outs
    assert outs["runs"] > 0 and outs["failed"] == 0, f"the canary took part of the work: {outs}"
    wait_until(
        lambda: canary.stop is not None, STOP_TIMEOUT + 5, "the canary did not stop", [canary.container]
    )
    assert canary.stop is not None and not canary.stop.killed
    scenario.settle_emails(timeout=SETTLE_SECONDS)
