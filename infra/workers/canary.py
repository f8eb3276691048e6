"""A worker pool's canary: one task of the pool's new task definition, consuming the pool's queues
for a while, before the pool's service rolls to it.

The canary is a plain one-off ECS task (RunTask) of the new task definition: the new image, the
pool's command, its queues. It takes messages like any worker of the pool, and every task run it
finishes is a JSON line in its log (app/queuemetrics/outcomes.py) naming the outcome and the
image. The verdict is a pure function of those lines (`canary_verdict`): the release fails when
more than the allowed share of the canary's task runs failed or asked for a retry, or when it
finished none although messages waited (the pool's backlog metric, which the queue-metrics
publisher writes). Many failures stop the window early.

Either way the canary ends with ECS's StopTask: SIGTERM, Celery's warm shutdown. Running tasks
finish (or the worker turns cold shortly before the stop timeout); with late acknowledgement every
message the canary took and did not finish goes back to the queue. When the verdict fails, `pulumi
up` fails with the pool, the failure rate and sample errors, and the pool's service, which depends
on the canary, keeps its old task definition.

Plain functions over boto3 ECS, CloudWatch Logs and CloudWatch clients, like the release's runner.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from infra import ecs_tasks
from infra.app_contract import Role
from infra.ecs_tasks import Clock, FargateNetwork, Sleep, TaskLog, TaskState
from queuemetrics import schema
from queuemetrics.outcomes import TaskOutcome, parse_outcome

STARTED_BY = "pulumi-worker-canary"
DEFAULT_POLL_INTERVAL_SECONDS = 10.0
# ECS takes a minute or two to pull the image and start the container on Fargate.
START_TIMEOUT_SECONDS = 10 * 60
# The window stops early once this many runs failed and the share is over the limit: enough not
# to judge by one unlucky task, few enough to keep the damage small.
EARLY_FAILURES = 5
SAMPLE_ERRORS = 3
STOP_MARGIN_SECONDS = 60  # beyond the container's stop timeout, for ECS to report it STOPPED
KEEPS_OLD_IMAGE = "The pool keeps running its previous image; fix the cause and run `pulumi up` again."


@dataclass(frozen=True)
class CanaryVerdict:
    """What the canary's task runs say about the new image."""

    passed: bool
    runs: int  # task runs finished (success, failure or retry)
    failed: int  # failures and retries
    reason: str
    sample_errors: tuple[str, ...] = ()

    @property
    def failure_percent(self) -> float:
        return 100 * self.failed / self.runs if self.runs else 0.0


def new_image_runs(outcomes: Iterable[TaskOutcome], image_digest: str) -> list[TaskOutcome]:
    """The runs of the new image (a canary runs nothing else; a line without a digest is an older image's)."""
    return [outcome for outcome in outcomes if outcome.image_digest == image_digest]


def canary_verdict(
    outcomes: Sequence[TaskOutcome], max_failure_percent: int, messages_waited: bool
) -> CanaryVerdict:
    """Passed unless more than `max_failure_percent` of the runs failed or retried, or no run
    finished while messages waited for the pool."""
    failed = [outcome for outcome in outcomes if not outcome.succeeded]
    samples = tuple(
        dict.fromkeys(f"{outcome.task}: {outcome.error or outcome.outcome}" for outcome in failed)
    )
    verdict = CanaryVerdict(True, len(outcomes), len(failed), "", samples[:SAMPLE_ERRORS])
    if not outcomes:
        if messages_waited:
            return _failed(verdict, "it finished no task while messages waited for the pool")
        return _passed(verdict, "no message came its way (nothing to judge)")
    if verdict.failure_percent > max_failure_percent:
        return _failed(
            verdict,
            f"{verdict.failed} of {verdict.runs} task runs failed or retried "
            f"({verdict.failure_percent:.0f} %, more than {max_failure_percent} %)",
        )
    return _passed(verdict, f"{verdict.runs - verdict.failed} of {verdict.runs} task runs succeeded")


def failing_early(outcomes: Sequence[TaskOutcome], max_failure_percent: int) -> bool:
    """Enough failures already that the window need not run out."""
    verdict = canary_verdict(outcomes, max_failure_percent, messages_waited=False)
    return verdict.failed >= EARLY_FAILURES and not verdict.passed


def _passed(verdict: CanaryVerdict, reason: str) -> CanaryVerdict:
    return CanaryVerdict(True, verdict.runs, verdict.failed, reason, verdict.sample_errors)


def _failed(verdict: CanaryVerdict, reason: str) -> CanaryVerdict:
    return CanaryVerdict(False, verdict.runs, verdict.failed, reason, verdict.sample_errors)


class CanaryError(Exception):
    """The canary failed the release, or could not run; the message is for the person running
    `pulumi up`."""


def breach_message(pool: str, verdict: CanaryVerdict, task_arn: str) -> str:
    samples = "".join(f"\n    {error}" for error in verdict.sample_errors)
    return (
        f"Worker canary of pool {pool!r} failed: {verdict.reason}. Failure rate "
        f"{verdict.failure_percent:.0f} % ({verdict.failed} of {verdict.runs}); canary task {task_arn}."
        + (f"\n  Sample errors:{samples}" if samples else "")
        + f"\n{KEEPS_OLD_IMAGE}"
    )


@dataclass(frozen=True)
class CanaryPlan:
    """One pool's canary: where it runs, what it runs, and how it is judged."""

    pool: str
    cluster: str
    service: str  # the pool's service: no canary while it does not run another task definition
    task_definition_arn: str
    container_name: str
    network: FargateNetwork
    log_group_name: str
    image_digest: str
    metric_namespace: str  # where the publisher writes the pool's backlog
    window_seconds: float
    max_failure_percent: int
    stop_timeout_seconds: float  # the worker container's ECS stop timeout

    @property
    def log_stream_prefix(self) -> str:
        return Role.WORKER.value  # the awslogs stream prefix of a worker container


@dataclass
class CanaryRun:
    """What one canary saw."""

    task_arn: str
    outcomes: list[TaskOutcome] = field(default_factory=list)
    started_at: datetime | None = None  # when the task was RUNNING (UTC), for the backlog query
    stopped_by_itself: TaskState | None = None


def previous_task_definition(ecs: Any, plan: CanaryPlan) -> str | None:
    """The task definition the pool's service runs now; None when it does not run (a new stack)."""
    services = ecs.describe_services(cluster=plan.cluster, services=[plan.service]).get("services") or []
    if not services or services[0].get("status") != "ACTIVE":
        return None
    return str(services[0]["taskDefinition"])


def run_canary(
    clients: Any,
    plan: CanaryPlan,
    *,
    poll_interval_seconds: float = DEFAULT_POLL_INTERVAL_SECONDS,
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
) -> tuple[CanaryVerdict, CanaryRun]:
    """Starts the canary, watches it for the window (or until it fails early), stops it gracefully
    and judges everything it logged."""
    try:
        task_arn = ecs_tasks.start_task(
            clients.ecs, plan.cluster, plan.task_definition_arn, plan.network, started_by=STARTED_BY
        )
    except ecs_tasks.TaskStartError as error:
        raise CanaryError(
            f"ECS could not start the canary of pool {plan.pool!r}: {error}. {KEEPS_OLD_IMAGE}"
        ) from error
    run = CanaryRun(task_arn)
    stream = ecs_tasks.log_stream_name(plan.log_stream_prefix, plan.container_name, task_arn)
    log = TaskLog(clients.logs, plan.log_group_name, stream)
    try:
        _watch(clients.ecs, log, plan, run, poll_interval_seconds, sleep, clock)
    finally:
        _stop(clients.ecs, log, plan, run, poll_interval_seconds, sleep, clock)
    waited = run.started_at is not None and backlog_seen(clients.cloudwatch, plan, run.started_at)
    verdict = canary_verdict(run.outcomes, plan.max_failure_percent, waited)
    if run.stopped_by_itself is not None:
        details = "; ".join(run.stopped_by_itself.stop_details())
        verdict = _failed(verdict, f"the canary task stopped by itself ({details})")
    return verdict, run


def _watch(
    ecs: Any, log: TaskLog, plan: CanaryPlan, run: CanaryRun, interval: float, sleep: Sleep, clock: Clock
) -> None:
    """Until the window is over: the task's state and the outcomes it logged."""
    deadline = clock() + START_TIMEOUT_SECONDS
    while True:
        state = ecs_tasks.describe_task(ecs, plan.cluster, run.task_arn, plan.container_name)
        if state.stopped:
            run.stopped_by_itself = state
            return
        if run.started_at is None and state.last_status == "RUNNING":
            run.started_at = datetime.now(UTC)
            deadline = clock() + plan.window_seconds
        run.outcomes += new_image_runs(_outcomes(log), plan.image_digest)
        if failing_early(run.outcomes, plan.max_failure_percent):
            return
        if clock() >= deadline:
            if run.started_at is None:
                raise CanaryError(
                    f"the canary of pool {plan.pool!r} ({run.task_arn}) did not start within "
                    f"{START_TIMEOUT_SECONDS // 60} minutes (last status {state.last_status}). "
                    + KEEPS_OLD_IMAGE
                )
            return
        sleep(interval)


def _outcomes(log: TaskLog) -> list[TaskOutcome]:
    return [outcome for line in log.read_new_lines() if (outcome := parse_outcome(line)) is not None]


def _stop(
    ecs: Any, log: TaskLog, plan: CanaryPlan, run: CanaryRun, interval: float, sleep: Sleep, clock: Clock
) -> None:
    """StopTask (SIGTERM: a warm shutdown that hands back what the canary did not finish), then
    wait until ECS reports it stopped, reading what it logged meanwhile."""
    if run.stopped_by_itself is None:
        ecs.stop_task(
            cluster=plan.cluster, task=run.task_arn, reason=f"worker canary of pool {plan.pool} is over"
        )
        deadline = clock() + plan.stop_timeout_seconds + STOP_MARGIN_SECONDS
        while not ecs_tasks.describe_task(ecs, plan.cluster, run.task_arn, plan.container_name).stopped:
            if clock() >= deadline:
                break
            sleep(interval)
    run.outcomes += new_image_runs(_outcomes(log), plan.image_digest)


def backlog_seen(cloudwatch: Any, plan: CanaryPlan, since: datetime) -> bool:
    """Messages waited for the pool while the canary ran: the publisher's PoolBacklog was above 0."""
    response = cloudwatch.get_metric_statistics(
        Namespace=plan.metric_namespace,
        MetricName=schema.POOL_BACKLOG.name,
        Dimensions=[
            {"Name": name, "Value": value}
            for name, value in schema.dimensions(schema.POOL_BACKLOG, plan.pool).items()
        ],
        # A minute either side: the publisher's datapoint of the minute the canary started and ended.
        StartTime=since - timedelta(minutes=1),
        EndTime=datetime.now(UTC) + timedelta(minutes=1),
        Period=60,
        Statistics=["Maximum"],
    )
    return any(point.get("Maximum", 0) > 0 for point in response.get("Datapoints", []))
