"""The release phase: the migrate task runner and the Pulumi provider that calls it.

ECS answers are scripted with botocore's Stubber (moto's ECS does not run containers), which also
checks every request against the real ECS API model; CloudWatch Logs is moto.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime.rpc import UNKNOWN

import infra
from infra import app_contract
from infra.release.provider import AwsClients, MigrationProvider
from infra.release.runner import (
    DEFAULT_POLL_INTERVAL_SECONDS,
    NOTHING_UPDATED,
    STARTED_BY,
    MigrationTask,
    ReleaseError,
    run_migration,
)
from testkit.clock import FakeClock

REGION = "eu-west-1"
CLUSTER = "djcelery-dev"
TASK_DEFINITION_ARN = f"arn:aws:ecs:{REGION}:123456789012:task-definition/djcelery-dev-migrate:7"
LOG_GROUP = "/ecs/djcelery-dev"
TASK_ID = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
TASK_ARN = f"arn:aws:ecs:{REGION}:123456789012:task/{CLUSTER}/{TASK_ID}"
LOG_STREAM = f"migrate/migrate/{TASK_ID}"
# The release check runs before the migration, as its own task of the migrate task definition.
CHECK_TASK_ID = "9a8b7c6d5e4f30211203f4e5d6c7b8a9"
CHECK_TASK_ARN = f"arn:aws:ecs:{REGION}:123456789012:task/{CLUSTER}/{CHECK_TASK_ID}"
# What an image with nothing waiting and nothing unknown reports.
QUIET_STATE: dict[str, Any] = {
    "tasks": ["signups.tasks.send_welcome_email"],
    "routes": {"signups.tasks.send_welcome_email": "email"},
    "beat": {},
    "migrations": ["signups.0001_initial"],
    "contract": [],
    "retired": [],
    "applied": ["signups.0001_initial"],
    "live": {"queues": {}, "unacked": {}, "beat_entries": {}},
}

MIGRATION_TASK = MigrationTask(
    cluster=CLUSTER,
    task_definition_arn=TASK_DEFINITION_ARN,
    container_name="migrate",
    subnet_ids=["subnet-aaa", "subnet-bbb"],
    security_group_ids=["sg-app"],
    assign_public_ip=False,
    log_group_name=LOG_GROUP,
    timeout_seconds=900,
)


class ScriptedEcs:
    """An ECS client whose answers are queued in order; unexpected calls fail the test."""

    def __init__(self) -> None:
        self.client = boto3.client("ecs", region_name=REGION)
        self.stubber = Stubber(self.client)

    def run_task_starts(self, task_definition_arn: str = TASK_DEFINITION_ARN) -> None:
        self.stubber.add_response(
            "run_task",
            {"tasks": [{"taskArn": TASK_ARN, "lastStatus": "PROVISIONING"}], "failures": []},
            expected_run_task(task_definition_arn),
        )

    def check_task_reports(
        self,
        logs: Any,
        state: dict[str, Any],
        exit_code: int = 0,
        task_definition_arn: str = TASK_DEFINITION_ARN,
        first_release: bool = True,
        log_lines: Sequence[str] = (),
        task_id: str = CHECK_TASK_ID,
    ) -> None:
        """The release check task starts, prints `state` as `release_state` does (then
        `log_lines`), and exits. A stack's first release (create) asks it to migrate an empty
        database too."""
        check_arn = CHECK_TASK_ARN.replace(CHECK_TASK_ID, task_id)
        flags = ("--applied", "--live", *(("--migrate-if-empty",) if first_release else ()))
        check = {"containerOverrides": [
            {"name": "migrate", "command": app_contract.release_state_command(*flags)}
        ]}  # fmt: skip
        self.stubber.add_response(
            "run_task",
            {"tasks": [{"taskArn": check_arn, "lastStatus": "PROVISIONING"}], "failures": []},
            {**expected_run_task(task_definition_arn), "overrides": check},
        )
        self.stubber.add_response(
            "describe_tasks",
            {
                "tasks": [
                    {
                        "taskArn": check_arn,
                        "lastStatus": "STOPPED",
                        "stopCode": "EssentialContainerExited",
                        "containers": [{"name": "migrate", "lastStatus": "STOPPED", "exitCode": exit_code}],
                    }
                ],
                "failures": [],
            },
            {"cluster": CLUSTER, "tasks": [check_arn]},
        )
        lines = ['{"level": "INFO", "message": "starting"}', *state_lines(state)] if state else []
        lines += log_lines
        write_log(logs, lines or ["Unknown command: 'release_state'"], f"migrate/migrate/{task_id}")

    def run_task_fails(self, reason: str) -> None:
        self.stubber.add_response(
            "run_task",
            {
                "tasks": [],
                "failures": [
                    {"arn": f"arn:aws:ecs:{REGION}:123456789012:cluster/{CLUSTER}", "reason": reason}
                ],
            },
            expected_run_task(),
        )

    def task_is(self, last_status: str, **task: Any) -> None:
        self.stubber.add_response(
            "describe_tasks",
            {"tasks": [{"taskArn": TASK_ARN, "lastStatus": last_status, **task}], "failures": []},
            {"cluster": CLUSTER, "tasks": [TASK_ARN]},
        )

    def task_exits(self, exit_code: int) -> None:
        self.task_is(
            "STOPPED",
            stopCode="EssentialContainerExited",
            stoppedReason="Essential container in task exited",
            containers=[{"name": "migrate", "lastStatus": "STOPPED", "exitCode": exit_code}],
        )


def expected_run_task(task_definition_arn: str = TASK_DEFINITION_ARN) -> dict[str, Any]:
    return {
        "cluster": CLUSTER,
        "taskDefinition": task_definition_arn,
        "launchType": "FARGATE",
        "count": 1,
        "startedBy": STARTED_BY,
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": ["subnet-aaa", "subnet-bbb"],
                "securityGroups": ["sg-app"],
                "assignPublicIp": "DISABLED",
            }
        },
    }


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        yield


@pytest.fixture
def ecs(aws: None) -> Iterator[ScriptedEcs]:
    scripted = ScriptedEcs()
    with scripted.stubber:
        yield scripted
        scripted.stubber.assert_no_pending_responses()


@pytest.fixture
def logs(aws: None) -> Any:
    client = boto3.client("logs", region_name=REGION)
    client.create_log_group(logGroupName=LOG_GROUP)
    return client


def state_lines(state: dict[str, Any], part_chars: int = 300) -> list[str]:
    """`state` in the marked parts `manage.py release_state` prints."""
    text = json.dumps(state)
    parts = [text[start : start + part_chars] for start in range(0, len(text), part_chars)]
    return [f"RELEASE_STATE {number}/{len(parts)} {part}" for number, part in enumerate(parts, start=1)]


def write_log(logs: Any, lines: list[str], stream: str = LOG_STREAM) -> None:
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
    now_ms = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName=LOG_GROUP,
        logStreamName=stream,
        logEvents=[{"timestamp": now_ms + index, "message": line} for index, line in enumerate(lines)],
    )


# --- The runner -------------------------------------------------------------------------------

POLL_SECONDS = 5.0


def run(ecs: ScriptedEcs, logs: Any, clock: FakeClock, **task_changes: Any):
    return run_migration(
        ecs.client,
        logs,
        replace(MIGRATION_TASK, **task_changes),
        poll_interval_seconds=POLL_SECONDS,
        sleep=clock.sleep,
        clock=clock,
    )


def test_a_zero_exit_succeeds_with_task_arn_exit_code_and_duration(ecs: ScriptedEcs, logs: Any) -> None:
    clock = FakeClock()
    ecs.run_task_starts()
    ecs.task_is("PROVISIONING")
    ecs.task_is("RUNNING")
    ecs.task_exits(0)

    result = run(ecs, logs, clock)

    assert (result.task_arn, result.exit_code) == (TASK_ARN, 0)
    assert result.duration_seconds == 2 * POLL_SECONDS, "duration must span RunTask to STOPPED"
    assert clock.sleeps == [POLL_SECONDS, POLL_SECONDS], "must poll at the configured interval"


def test_a_non_zero_exit_fails_with_the_exit_code_and_the_log_tail(ecs: ScriptedEcs, logs: Any) -> None:
    lines = [f"migration output {index:02d}" for index in range(40)]
    lines[-1] = 'django.db.utils.ProgrammingError: column "email" of relation "signups_signup" does not exist'
    write_log(logs, lines)
    ecs.run_task_starts()
    ecs.task_exits(1)

    with pytest.raises(ReleaseError) as failure:
        run(ecs, logs, FakeClock())

    message = str(failure.value)
    assert "exited with code 1" in message, message
    assert "EssentialContainerExited" in message, message
    assert f"{LOG_GROUP}, stream {LOG_STREAM}" in message, message
    assert lines[-1] in message, "the error must show the last log line"
    assert "migration output 10" in message and "migration output 09" not in message, (
        f"the error must show the last 30 log lines only:\n{message}"
    )
    assert "No service was updated" in message, message


def test_capacity_failure_at_run_task_fails_with_the_reason(ecs: ScriptedEcs, logs: Any) -> None:
    reason = (
        "Capacity is unavailable at this time. Please try again later or in a different availability zone"
    )
    ecs.run_task_fails(reason)

    with pytest.raises(ReleaseError) as failure:
        run(ecs, logs, FakeClock())

    assert reason in str(failure.value), str(failure.value)
    assert "could not start the migrate task" in str(failure.value)


def test_a_rejected_run_task_request_fails_with_the_aws_message(ecs: ScriptedEcs, logs: Any) -> None:
    ecs.stubber.add_client_error(
        "run_task",
        service_error_code="InvalidParameterException",
        service_message="Error retrieving subnet information for [subnet-aaa]: The subnet ID does not exist",
    )

    with pytest.raises(ReleaseError) as failure:
        run(ecs, logs, FakeClock())

    assert "InvalidParameterException: Error retrieving subnet information" in str(failure.value)


@pytest.mark.parametrize(
    "stopped_reason",
    [
        "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref "
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/djcelery@sha256:0123: not found",
        "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval "
        "failed: unable to retrieve secret from asm: AccessDeniedException",
    ],
    ids=["image-pull", "secrets"],
)
def test_a_task_that_stops_before_the_container_starts_fails_with_the_reason(
    ecs: ScriptedEcs, logs: Any, stopped_reason: str
) -> None:
    ecs.run_task_starts()
    ecs.task_is("PENDING")
    ecs.task_is(
        "STOPPED",
        stopCode="TaskFailedToStart",
        stoppedReason=stopped_reason,
        containers=[{"name": "migrate", "lastStatus": "STOPPED"}],
    )

    with pytest.raises(ReleaseError) as failure:
        run(ecs, logs, FakeClock())

    message = str(failure.value)
    assert stopped_reason in message, message
    assert "TaskFailedToStart" in message, message
    assert "no exit code" in message, message
    assert "never started" in message, "a missing log stream must be explained, not crash"


def test_an_essential_container_without_exit_code_fails(ecs: ScriptedEcs, logs: Any) -> None:
    write_log(logs, ["Operations to perform:", "  Apply all migrations: signups"])
    ecs.run_task_starts()
    ecs.task_is(
        "STOPPED",
        stopCode="UserInitiated",
        stoppedReason="Task stopped by user",
        containers=[{"name": "migrate", "lastStatus": "STOPPED", "reason": "Task was stopped"}],
    )

    with pytest.raises(ReleaseError) as failure:
        run(ecs, logs, FakeClock())

    message = str(failure.value)
    assert "no exit code" in message and "UserInitiated" in message, message
    assert "container reason: Task was stopped" in message, message
    assert "Apply all migrations: signups" in message, message


def test_timeout_stops_the_task_and_fails_with_the_log_tail(ecs: ScriptedEcs, logs: Any) -> None:
    write_log(logs, ["Applying signups.0007_backfill_email..."])
    clock = FakeClock()
    ecs.run_task_starts()
    for _ in range(4):  # at 0, 10, 20 and 30 s
        ecs.task_is("RUNNING", containers=[{"name": "migrate", "lastStatus": "RUNNING"}])
    ecs.stubber.add_response(
        "stop_task", {"task": {"taskArn": TASK_ARN}}, {"cluster": CLUSTER, "task": TASK_ARN, "reason": ANY}
    )

    with pytest.raises(ReleaseError) as failure:
        run_migration(
            ecs.client,
            logs,
            replace(MIGRATION_TASK, timeout_seconds=30),
            poll_interval_seconds=10,
            sleep=clock.sleep,
            clock=clock,
        )

    message = str(failure.value)
    assert "did not finish within 30 s" in message and "last status RUNNING" in message, message
    assert "has been stopped" in message, message
    assert "Applying signups.0007_backfill_email..." in message, message
    assert sum(clock.sleeps) == 30, f"must give up at the timeout, slept {clock.sleeps}"


# --- The Pulumi provider -----------------------------------------------------------------------

RELEASE_INPUTS = {
    "cluster": CLUSTER,
    "task_definition_arn": TASK_DEFINITION_ARN,
    "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/djcelery@sha256:" + "a" * 64,
    "subnet_ids": ["subnet-aaa", "subnet-bbb"],
    "security_group_ids": ["sg-app"],
    "assign_public_ip": False,
    "log_group_name": LOG_GROUP,
    "container_name": "migrate",
    "region": REGION,
    "timeout_seconds": 900.0,  # numbers reach providers as floats
    "consumed_queues": ["default", "email"],
    "force": False,
    "__provider": "serialized-provider",
}


def no_aws(region: str) -> AwsClients:
    raise AssertionError(f"no AWS client may be created here (asked for {region})")


def provider_on(ecs: ScriptedEcs, logs: Any) -> MigrationProvider:
    clock = FakeClock()
    return MigrationProvider(
        clients=lambda region: AwsClients(ecs=ecs.client, logs=logs), sleep=clock.sleep, clock=clock
    )


def test_create_runs_the_migration_and_records_how_it_ran(ecs: ScriptedEcs, logs: Any) -> None:
    ecs.check_task_reports(logs, QUIET_STATE)
    ecs.run_task_starts()
    ecs.task_is("RUNNING")
    ecs.task_exits(0)

    created = provider_on(ecs, logs).create(dict(RELEASE_INPUTS))

    assert created.id, "a created resource needs an id"
    outputs = created.outs or {}
    assert (outputs["task_arn"], outputs["exit_code"]) == (TASK_ARN, 0)
    assert outputs["duration_seconds"] == DEFAULT_POLL_INTERVAL_SECONDS
    assert outputs["task_definition_arn"] == TASK_DEFINITION_ARN
    assert outputs["image"] == RELEASE_INPUTS["image"], "the state must remember which image was migrated"
    assert outputs["tasks"] == QUIET_STATE["tasks"] and outputs["migrations"] == QUIET_STATE["migrations"]
    assert outputs["migrations_run"] == [] and outputs["overridden"] == []


def test_update_runs_the_new_migrate_task_definition(ecs: ScriptedEcs, logs: Any) -> None:
    new_task_definition = TASK_DEFINITION_ARN.replace(":7", ":8")
    ecs.check_task_reports(logs, QUIET_STATE, task_definition_arn=new_task_definition, first_release=False)
    ecs.run_task_starts(new_task_definition)
    ecs.task_exits(0)

    updated = provider_on(ecs, logs).update(
        "release-id", dict(RELEASE_INPUTS), {**RELEASE_INPUTS, "task_definition_arn": new_task_definition}
    )

    assert (updated.outs or {})["task_definition_arn"] == new_task_definition


def test_a_failed_migration_fails_create(ecs: ScriptedEcs, logs: Any) -> None:
    ecs.check_task_reports(logs, QUIET_STATE)
    ecs.run_task_starts()
    ecs.task_exits(3)

    with pytest.raises(ReleaseError, match="exited with code 3"):
        provider_on(ecs, logs).create(dict(RELEASE_INPUTS))


# A database no version ever ran on: `release_state --applied` reports no applied migration.
EMPTY_DATABASE_STATE: dict[str, Any] = {**QUIET_STATE, "applied": []}


def test_a_first_release_on_an_empty_database_migrates_in_its_check_task(ecs: ScriptedEcs, logs: Any) -> None:
    """One Fargate task instead of two for a new stack or preview: the report, then the migrations.
    No second RunTask is scripted: the Stubber fails the test if the provider starts one."""
    ecs.check_task_reports(logs, EMPTY_DATABASE_STATE)

    outputs = provider_on(ecs, logs).create(dict(RELEASE_INPUTS)).outs or {}

    assert (outputs["task_arn"], outputs["exit_code"]) == (CHECK_TASK_ARN, 0), outputs
    assert outputs["migrations_run"] == QUIET_STATE["migrations"], "the record names what the task applied"


def test_a_first_release_whose_migration_fails_in_the_check_task_fails_with_its_log(
    ecs: ScriptedEcs, logs: Any
) -> None:
    ecs.check_task_reports(
        logs, EMPTY_DATABASE_STATE, exit_code=1, log_lines=["django.db.utils.ProgrammingError: boom"]
    )

    with pytest.raises(ReleaseError, match="exited with code 1") as failed:
        provider_on(ecs, logs).create(dict(RELEASE_INPUTS))
    assert "ProgrammingError: boom" in str(failed.value) and NOTHING_UPDATED in str(failed.value)


def test_a_first_release_of_an_image_without_the_flag_is_checked_then_migrated_apart(
    ecs: ScriptedEcs, logs: Any
) -> None:
    """A promoted image built before --migrate-if-empty existed: Django's parser refuses the flag
    (exit code 2), and the release goes the two-task way."""
    ecs.check_task_reports(
        logs,
        {},
        exit_code=2,
        log_lines=["manage.py release_state: error: unrecognized arguments: --migrate-if-empty"],
    )
    ecs.check_task_reports(logs, EMPTY_DATABASE_STATE, first_release=False, task_id="1" * 32)
    ecs.run_task_starts()
    ecs.task_exits(0)

    outputs = provider_on(ecs, logs).create(dict(RELEASE_INPUTS)).outs or {}

    assert outputs["task_arn"] == TASK_ARN, "the migrate task ran after the check"


@pytest.mark.parametrize(
    ("changed", "runs_again"),
    [
        ({}, False),
        ({"subnet_ids": ["subnet-ccc"], "timeout_seconds": 60.0}, False),
        # destroy rebuilds the provider from the state's copy (pulumi/pulumi#6285): a stale copy
        # must be replaced, by an update that runs nothing (below).
        ({"__provider": "another-serialization"}, True),
        ({"image": RELEASE_INPUTS["image"].replace("a" * 64, "b" * 64)}, True),
        ({"task_definition_arn": TASK_DEFINITION_ARN.replace(":7", ":8")}, True),
        ({"image": UNKNOWN}, True),  # a preview of a new build: the digest is not known yet
    ],
    ids=[
        "no-change",
        "network-timeout",
        "provider-only",
        "new-image",
        "new-task-definition",
        "image-unknown",
    ],
)
def test_diff_runs_migrations_again_only_for_a_new_image_or_task_definition(
    changed: dict[str, Any], runs_again: bool
) -> None:
    state = {**RELEASE_INPUTS, "task_arn": TASK_ARN, "exit_code": 0, "duration_seconds": 42.0}

    result = MigrationProvider(clients=no_aws).diff("release-id", state, {**RELEASE_INPUTS, **changed})

    assert result.changes is runs_again, f"diff with {changed} must report changes={runs_again}"


def test_an_update_for_the_stored_provider_only_runs_nothing() -> None:
    """The engine sends the new inputs with the new `__provider`; the SDK stores that provider with
    whatever `update` returns (pulumi/dynamic/__main__.py `Update`)."""
    state = {**RELEASE_INPUTS, "task_arn": TASK_ARN, "exit_code": 0, "duration_seconds": 42.0}
    news = {**RELEASE_INPUTS, "timeout_seconds": 60.0, "__provider": "another-serialization"}

    updated = MigrationProvider(clients=no_aws).update("release-id", state, news)

    assert updated.outs == {key: value for key, value in state.items() if key != "__provider"}, (
        "the outputs of the release that ran stay; no migration ran (no AWS client was asked for)"
    )


def test_delete_touches_nothing() -> None:
    assert MigrationProvider(clients=no_aws).delete("release-id", dict(RELEASE_INPUTS)) is None


def test_the_provider_unpickles_where_pulumi_runs_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The engine starts the provider process in the program directory (the project root); the
    # program pickles the provider there too.
    program_dir = Path(infra.__file__).parents[1]
    monkeypatch.chdir(program_dir)
    serialized = serialize_provider(MigrationProvider())
    blob = tmp_path / "provider"
    blob.write_text(serialized)
    load = (
        "import base64, pathlib, sys, dill\n"
        "provider = dill.loads(base64.b64decode(pathlib.Path(sys.argv[1]).read_text()))\n"
        "print(type(provider).__module__, type(provider).__name__, provider._clients.__name__)\n"
    )
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}

    loaded = subprocess.run(
        [sys.executable, "-c", load, str(blob)],
        cwd=program_dir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert loaded.returncode == 0, f"the provider process could not load the provider:\n{loaded.stderr}"
    assert loaded.stdout.split() == ["infra.release.provider", "MigrationProvider", "aws_clients"], (
        "the provider process must rebuild the real provider with real AWS clients"
    )
