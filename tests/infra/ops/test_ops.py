"""`python -m infra.ops`: one-off manage.py tasks and the ECS Exec shell line for a deployed stack.

ECS is a botocore Stubber (moto's tasks never stop or exit), CloudWatch Logs is moto, and the stack
outputs come from a stand-in `pulumi` executable on PATH that answers like the real CLI. Time is
injected: each `sleep` of the poll loop advances the scenario instead of waiting.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from infra.ops import cli as ops
from infra.ops import stack as ops_stack
from infra.ops import tasks as ops_tasks
from infra.ops.stack import DeployedStack, OpsError, StackNotDeployedError

REGION = "eu-west-1"
CLUSTER = "djcelery-dev"
SERVICE = "djcelery-dev-web"
TASK_DEFINITION = f"arn:aws:ecs:{REGION}:123456789012:task-definition/djcelery-dev-web:7"
# One-off commands run in the migrate task definition: one container, so no second Beat or worker.
ONE_OFF_TASK_DEFINITION = f"arn:aws:ecs:{REGION}:123456789012:task-definition/djcelery-dev-migrate:7"
TASK_ID = "4f1c2e3d5a6b47c8a9d0e1f2a3b4c5d6"
TASK_ARN = f"arn:aws:ecs:{REGION}:123456789012:task/{CLUSTER}/{TASK_ID}"
LOG_GROUP = "/ecs/djcelery-dev/migrate"
LOG_STREAM = f"migrate/migrate/{TASK_ID}"

# As `pulumi stack output --json` prints them for a deployed stack.
OUTPUTS: dict[str, Any] = {
    "clusterName": CLUSTER,
    "webServiceName": SERVICE,
    "webTaskDefinitionArn": TASK_DEFINITION,
    "webContainerName": "web",
    "migrateTaskDefinitionArn": ONE_OFF_TASK_DEFINITION,
    "serviceSubnetIds": ["subnet-0aaa", "subnet-0bbb"],
    "appSecurityGroupId": "sg-0app",
    "assignPublicIp": False,
    "logGroupNames": {
        "web": "/ecs/djcelery-dev/web",
        "migrate": LOG_GROUP,
        "worker": "/ecs/djcelery-dev/worker",
    },
    "url": "http://djcelery-dev-123.eu-west-1.elb.amazonaws.com",
}


def write_log(logs: Any, *messages: str) -> None:
    """What the awslogs driver does while the container prints."""
    existing = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=LOG_STREAM)
    if not existing["logStreams"]:
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=LOG_STREAM)
    # Now-ish timestamps (CloudWatch rejects old events), strictly increasing across calls.
    written = len(logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=LOG_STREAM)["events"])
    start = int(time.time() * 1000) + written
    events = [{"timestamp": start + n, "message": message} for n, message in enumerate(messages)]
    logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=LOG_STREAM, logEvents=events)


class Scenario:
    """The injected `sleep`: each call runs the next step of the scenario and records the wait."""

    def __init__(self, *steps: Callable[[], None]) -> None:
        self.steps = list(steps)
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        assert self.steps, "the tool kept polling after the scenario ended"
        self.steps.pop(0)()


def task(status: str, *, exit_code: int | None = None, **fields: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "migrate", "lastStatus": status}
    if exit_code is not None:
        container["exitCode"] = exit_code
    desired = "STOPPED" if status == "STOPPED" else "RUNNING"
    return {
        "taskArn": TASK_ARN,
        "lastStatus": status,
        "desiredStatus": desired,
        "containers": [container],
    } | fields


def expect_run_task(stubber: Stubber, command: list[str], *, assign_public_ip: str = "DISABLED") -> None:
    stubber.add_response(
        "run_task",
        {"tasks": [task("PROVISIONING")], "failures": []},
        {
            "cluster": CLUSTER,
            "taskDefinition": ONE_OFF_TASK_DEFINITION,
            "launchType": "FARGATE",
            "count": 1,
            "startedBy": ops_tasks.ONE_OFF_STARTED_BY,
            "networkConfiguration": {
                "awsvpcConfiguration": {
                    "subnets": ["subnet-0aaa", "subnet-0bbb"],
                    "securityGroups": ["sg-0app"],
                    "assignPublicIp": assign_public_ip,
                }
            },
            "overrides": {"containerOverrides": [{"name": "migrate", "command": command}]},
        },
    )


def expect_describe(stubber: Stubber, described: dict[str, Any]) -> None:
    stubber.add_response(
        "describe_tasks", {"tasks": [described], "failures": []}, {"cluster": CLUSTER, "tasks": [TASK_ARN]}
    )


def clients(ecs_client: Any, logs_client: Any = None) -> Callable[[str, str], Any]:
    def client_factory(service: str, region: str) -> Any:
        assert region == REGION, f"{service} client for {region}, but the stack is in {REGION}"
        if service == "logs" and logs_client is not None:
            return logs_client
        assert service == "ecs", f"unexpected {service} client"
        return ecs_client

    return client_factory


def run_cli(
    argv: list[str], stack: DeployedStack, ecs_client: Any, logs_client: Any = None, **kw: Any
) -> int:
    return ops.main(
        argv, stack_reader=lambda name: stack, client_factory=clients(ecs_client, logs_client), **kw
    )


# --- manage: one-off tasks --------------------------------------------------------------------
def test_manage_streams_the_log_once_and_exits_0_when_the_command_succeeds(stack, ecs, logs, capsys):
    client, stubber = ecs
    expect_run_task(stubber, ["python", "manage.py", "migrate", "--noinput"])
    expect_describe(stubber, task("PROVISIONING"))  # no log stream yet
    expect_describe(stubber, task("RUNNING"))
    expect_describe(stubber, task("RUNNING"))
    expect_describe(stubber, task("STOPPED", exit_code=0, stopCode="EssentialContainerExited"))
    scenario = Scenario(
        lambda: write_log(logs, "Operations to perform:", "  Apply all migrations: signups"),
        lambda: None,  # a quiet poll prints nothing again
        lambda: write_log(logs, "  Applying signups.0001_initial... OK"),  # last line, then the task stops
    )

    exit_code = run_cli(
        ["manage", "dev", "--", "migrate", "--noinput"], stack, client, logs, sleep=scenario.sleep
    )

    out, err = capsys.readouterr()
    assert exit_code == 0, f"exit code {exit_code}, stderr:\n{err}"
    assert out.splitlines() == [
        "Operations to perform:",
        "  Apply all migrations: signups",
        "  Applying signups.0001_initial... OK",
    ], "every log line must be printed once, in order, including those written just before the stop"
    assert f"started task {TASK_ID}" in err and f"task {TASK_ID}: STOPPED" in err, err
    assert scenario.waits == [ops_tasks.POLL_SECONDS] * 3


def test_schedules_runs_the_apps_listing_with_the_stacks_alarm_thresholds(stack, ecs, logs, capsys):
    """Late means what the entry's alarm means: max(scheduleAlarmPeriods x period, the minimum)."""
    client, stubber = ecs
    expected = ["python", "manage.py", "schedules", "--stale-periods", "2", "--stale-minimum-seconds", "300"]
    expect_run_task(stubber, expected)
    expect_describe(stubber, task("STOPPED", exit_code=0, stopCode="EssentialContainerExited"))
    write_log(logs, "entry  last run  next run  last success  state")

    assert run_cli(["schedules", "dev"], stack, client, logs, sleep=Scenario().sleep) == 0
    assert "entry  last run" in capsys.readouterr().out


def test_manage_exits_with_the_commands_exit_code_and_shows_the_log_tail(stack, ecs, logs, capsys):
    client, stubber = ecs
    expect_run_task(stubber, ["python", "manage.py", "createsuperuser", "--noinput"])
    expect_describe(stubber, task("RUNNING"))
    expect_describe(stubber, task("STOPPED", exit_code=3, stopCode="EssentialContainerExited"))
    scenario = Scenario(
        lambda: write_log(logs, "Traceback (most recent call last):", "CommandError: You must use --email")
    )

    exit_code = run_cli(
        ["manage", "dev", "createsuperuser", "--noinput"], stack, client, logs, sleep=scenario.sleep
    )

    out, err = capsys.readouterr()
    assert exit_code == 3, f"the CLI must exit with manage.py's exit code 3, got {exit_code}; stderr:\n{err}"
    assert out.splitlines()[-1] == "CommandError: You must use --email", out
    assert "manage.py createsuperuser --noinput exited with code 3" in err, err


@pytest.mark.parametrize(("assign_public_ip", "expected"), [(True, "ENABLED"), (False, "DISABLED")])
def test_one_off_task_uses_the_services_public_ip_setting(ecs, assign_public_ip, expected):
    client, stubber = ecs
    stack = DeployedStack.from_outputs("dev", REGION, OUTPUTS | {"assignPublicIp": assign_public_ip})
    expect_run_task(stubber, ["python", "manage.py", "check"], assign_public_ip=expected)

    assert ops_tasks.start_one_off_task(client, stack, ["python", "manage.py", "check"]) == TASK_ARN


def refuse_with_failures(stubber: Stubber) -> None:
    failure = {"arn": TASK_DEFINITION, "reason": "Capacity is unavailable at this time"}
    stubber.add_response("run_task", {"tasks": [], "failures": [failure]})


def refuse_with_client_error(stubber: Stubber) -> None:
    stubber.add_client_error(
        "run_task",
        service_error_code="InvalidParameterException",
        service_message="Task definition does not support launch_type FARGATE.",
    )


@pytest.mark.parametrize(
    ("refuse", "reason"),
    [
        (refuse_with_failures, "Capacity is unavailable at this time"),
        (refuse_with_client_error, "InvalidParameterException: Task definition does not support launch_type"),
    ],
    ids=["run-task-failures", "run-task-error"],
)
def test_manage_reports_why_ecs_did_not_start_the_task(stack, ecs, capsys, refuse, reason):
    client, stubber = ecs
    refuse(stubber)

    exit_code = run_cli(["manage", "dev", "--", "migrate"], stack, client, sleep=Scenario().sleep)

    err = capsys.readouterr().err
    assert exit_code == ops.EXIT_OPS_ERROR, err
    assert "did not start" in err or "refused to start" in err, err
    assert reason in err, f"the reason from ECS must be shown, got:\n{err}"


def test_manage_reports_a_task_that_stopped_before_the_command_ran(stack, ecs, logs, capsys):
    client, stubber = ecs
    reason = "ResourceInitializationError: unable to pull secrets or registry auth: retrieval failed"
    expect_run_task(stubber, ["python", "manage.py", "migrate"])
    expect_describe(stubber, task("PENDING"))
    expect_describe(stubber, task("STOPPED", stopCode="TaskFailedToStart", stoppedReason=reason))

    exit_code = run_cli(
        ["manage", "dev", "--", "migrate"], stack, client, logs, sleep=Scenario(lambda: None).sleep
    )

    err = capsys.readouterr().err
    assert exit_code == ops.EXIT_OPS_ERROR, f"no exit code from manage.py must not look like success: {err}"
    assert f"task {TASK_ID} stopped before manage.py ran" in err, err
    assert reason in err and "TaskFailedToStart" in err, err


def test_interrupting_the_follow_leaves_the_task_running_and_says_how_to_stop_it(stack, ecs, logs, capsys):
    client, stubber = ecs
    expect_run_task(stubber, ["python", "manage.py", "migrate"])
    expect_describe(stubber, task("RUNNING"))

    def press_ctrl_c() -> None:
        raise KeyboardInterrupt

    exit_code = run_cli(
        ["manage", "dev", "--", "migrate"], stack, client, logs, sleep=Scenario(press_ctrl_c).sleep
    )

    err = capsys.readouterr().err
    assert exit_code == ops.EXIT_INTERRUPTED
    # No stop_task was stubbed: calling it would fail this test.
    assert f"aws ecs stop-task --region {REGION} --cluster {CLUSTER} --task {TASK_ID}" in err, err


def test_manage_without_a_command_is_a_usage_error(stack, ecs, capsys):
    client, _ = ecs
    with pytest.raises(SystemExit) as exit_info:
        run_cli(["manage", "dev"], stack, client)
    assert exit_info.value.code == ops.EXIT_USAGE
    assert "-- migrate" in capsys.readouterr().err


# --- shell: the ECS Exec line -------------------------------------------------------------------
OTHER_TASK_ARN = f"arn:aws:ecs:{REGION}:123456789012:task/{CLUSTER}/0000aaaa1111bbbb2222cccc3333dddd"


def expect_service_tasks(stubber: Stubber, tasks: list[dict[str, Any]]) -> None:
    arns = [t["taskArn"] for t in tasks]
    stubber.add_response(
        "list_tasks",
        {"taskArns": arns},
        {"cluster": CLUSTER, "serviceName": SERVICE, "desiredStatus": "RUNNING"},
    )
    if arns:
        stubber.add_response("describe_tasks", {"tasks": tasks}, {"cluster": CLUSTER, "tasks": arns})


@pytest.mark.parametrize("command", [None, "python manage.py shell"])
def test_shell_prints_the_execute_command_line_for_a_running_web_task(stack, ecs, capsys, command):
    client, stubber = ecs
    starting = task("PENDING", enableExecuteCommand=True) | {"taskArn": OTHER_TASK_ARN}
    expect_service_tasks(stubber, [starting, task("RUNNING", enableExecuteCommand=True)])
    extra = ["--command", command] if command else []

    exit_code = run_cli(["shell", "dev", *extra], stack, client)

    out, err = capsys.readouterr()
    assert exit_code == 0, err
    assert shlex.split(out) == [
        "aws", "ecs", "execute-command", "--region", REGION, "--cluster", CLUSTER, "--task", TASK_ID,
        "--container", "web", "--interactive", "--command", command or "/bin/sh",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "tasks", [[], [task("PROVISIONING", enableExecuteCommand=True)]], ids=["no-task", "only-starting"]
)
def test_shell_without_a_running_web_task_is_a_clear_error(stack, ecs, capsys, tasks):
    client, stubber = ecs
    expect_service_tasks(stubber, tasks)

    exit_code = run_cli(["shell", "dev"], stack, client)

    out, err = capsys.readouterr()
    assert exit_code == ops.EXIT_OPS_ERROR and out == ""
    assert f"no running task in service {SERVICE} of cluster {CLUSTER}" in err, err


def test_shell_says_when_ecs_exec_is_off(stack, ecs, capsys):
    client, stubber = ecs
    expect_service_tasks(stubber, [task("RUNNING", enableExecuteCommand=False)])

    exit_code = run_cli(["shell", "dev"], stack, client)

    err = capsys.readouterr().err
    assert exit_code == ops.EXIT_OPS_ERROR
    assert "ECS Exec is off" in err and "python -m infra.ops manage dev" in err, err


# --- Reading the stack through the pulumi CLI ----------------------------------------------------
FAKE_PULUMI = """
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "calls.jsonl"), "a") as calls:
    calls.write(json.dumps({"args": sys.argv[1:], "cwd": os.getcwd()}) + "\\n")
with open(os.path.join(here, "answers.json")) as answers:
    answer = json.load(answers)[sys.argv[1]]
sys.stdout.write(answer["stdout"])
sys.stderr.write(answer["stderr"])
sys.exit(answer["code"])
"""


class FakePulumi:
    """A `pulumi` executable on PATH that answers `stack ...` and `config ...` as told."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.answers: dict[str, dict[str, Any]] = {}
        executable = bin_dir / "pulumi"
        executable.write_text(f"#!{sys.executable}\n{FAKE_PULUMI}")
        executable.chmod(0o755)

    def answer(self, command: str, *, stdout: Any = "", stderr: str = "", code: int = 0) -> None:
        text = stdout if isinstance(stdout, str) else json.dumps(stdout)
        self.answers[command] = {"stdout": text, "stderr": stderr, "code": code}
        (self.bin_dir / "answers.json").write_text(json.dumps(self.answers))

    def calls(self) -> list[dict[str, Any]]:
        lines = (self.bin_dir / "calls.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]


@pytest.fixture
def pulumi(tmp_path, monkeypatch) -> FakePulumi:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    return FakePulumi(tmp_path)


def test_read_stack_takes_outputs_and_region_from_the_stack(pulumi):
    pulumi.answer("stack", stdout=OUTPUTS)
    pulumi.answer("config", stdout={"aws:region": {"value": REGION, "secret": False}})

    assert ops_stack.read_stack("dev") == DeployedStack(
        name="dev",
        region=REGION,
        cluster_name=CLUSTER,
        web_service_name=SERVICE,
        web_task_definition_arn=TASK_DEFINITION,
        web_container_name="web",
        one_off_task_definition_arn=ONE_OFF_TASK_DEFINITION,
        subnet_ids=("subnet-0aaa", "subnet-0bbb"),
        security_group_id="sg-0app",
        assign_public_ip=False,
        one_off_log_group=LOG_GROUP,
    )
    calls = pulumi.calls()
    assert [call["args"] for call in calls] == [
        ["stack", "output", "--show-secrets=false", "--json", "--stack", "dev", "--non-interactive"],
        ["config", "--json", "--stack", "dev", "--non-interactive"],
    ]
    assert {call["cwd"] for call in calls} == {str(ops_stack.REPO_ROOT)}, (
        "pulumi must run in the project directory"
    )


def test_read_stack_falls_back_to_aws_region(pulumi, monkeypatch):
    pulumi.answer("stack", stdout=OUTPUTS)
    pulumi.answer("config", stdout={"djcelery:webCpu": {"value": "256", "secret": False}})
    monkeypatch.setenv("AWS_REGION", "us-east-2")

    assert ops_stack.read_stack("dev").region == "us-east-2"


def test_read_stack_without_any_region_says_how_to_set_it(pulumi):
    pulumi.answer("stack", stdout=OUTPUTS)
    pulumi.answer("config", stdout={})

    with pytest.raises(OpsError, match=r"pulumi config set aws:region <region> --stack dev"):
        ops_stack.read_stack("dev")


@pytest.mark.parametrize(
    "answer",
    [
        {"stderr": "error: no stack named 'ghost' found\n", "code": 255},
        {"stdout": {}},  # the stack exists but nothing was deployed (or it was destroyed)
    ],
    ids=["no-such-stack", "empty-outputs"],
)
def test_a_stack_that_is_not_deployed_is_named_with_the_command_to_deploy_it(pulumi, capsys, answer):
    pulumi.answer("stack", **answer)

    with pytest.raises(StackNotDeployedError, match=r"'ghost'.*scripts/deploy ghost"):
        ops_stack.read_stack("ghost")

    def no_aws(service: str, region: str) -> Any:
        raise AssertionError(f"no {service} call may be made for a stack that is not deployed")

    assert ops.main(["manage", "ghost", "--", "migrate"], client_factory=no_aws) == ops.EXIT_OPS_ERROR
    assert "scripts/deploy ghost" in capsys.readouterr().err


def test_missing_pulumi_cli_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no pulumi

    with pytest.raises(OpsError, match=r"Pulumi CLI is not installed"):
        ops_stack.read_stack("dev")


def test_other_pulumi_failures_show_pulumi_s_own_message(pulumi):
    message = "error: passphrase must be set with PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE"
    pulumi.answer("stack", stderr=message + "\n", code=255)

    with pytest.raises(OpsError, match=r"PULUMI_CONFIG_PASSPHRASE") as error:
        ops_stack.read_stack("dev")
    assert not isinstance(error.value, StackNotDeployedError)


def test_incomplete_outputs_are_listed_in_one_error():
    outputs = {key: value for key, value in OUTPUTS.items() if key != "clusterName"}
    outputs |= {"serviceSubnetIds": [], "assignPublicIp": "[secret]", "logGroupNames": {"worker": "/w"}}

    with pytest.raises(OpsError) as error:
        DeployedStack.from_outputs("dev", REGION, outputs)

    message = str(error.value)
    for problem in (
        "clusterName is missing",
        "serviceSubnetIds must be a non-empty list of subnet ids",
        "assignPublicIp is a secret output",
        "logGroupNames must be a map with a 'migrate' group",
        "scripts/deploy dev",
    ):
        assert problem in message, f"{problem!r} not in: {message}"
