"""Day-2 operations on a deployed stack: one-off `manage.py` commands and an ECS Exec shell.

    python -m infra.ops manage <stack> -- <manage.py arguments...>
    python -m infra.ops shell <stack> [--command CMD]
    python -m infra.ops rollback <stack> --to <digest|previous> [--force] [--yes]
    python -m infra.ops release-check <stack> [--summary FILE]
    python -m infra.ops restore <stack> (--to TIME | --latest) [--no-wait]

`manage` starts the web task definition as a one-off Fargate task (same subnets, security group
and secrets as the web service) with the command `python manage.py <arguments>`, streams the
task's CloudWatch log to stdout and exits with the command's exit code. `shell` prints the
`aws ecs execute-command` line that opens an interactive shell in a running web task. `rollback`
releases an image the stack keeps (rollback.py); `release-check` is the pull request's release
check (release_check.py). `restore` restores the stack's database to a point in time into a new
instance and prints the configuration change that points the stack at it (restore.py).

Exit codes:
    0-255  `manage`: the exit code of `manage.py` in the task; `shell`: 0 once the line is printed;
           `rollback`: the exit code of its `pulumi up`; `release-check`: 1 when the change is refused;
           `restore`: 0 once the restored instance is available (or, with --no-wait, being created)
    2      the command line was not understood
    125    the operation could not be carried out (stack not deployed, the Pulumi CLI missing,
           the task did not start, no running web task, an AWS error); the reason is on stderr
    130    interrupted while following the task; the task itself keeps running

The deployed stack is read from `pulumi stack output` (see `read_stack`); everything that talks
to AWS is a plain function over boto3 clients passed in.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.exceptions import BotoCoreError, ClientError

from infra import ecs_tasks
from infra.app_contract import Role
from infra.ecs_tasks import FargateNetwork, TaskLog, TaskState, client_error_text, task_id
from infra.ops import restore

REPO_ROOT = Path(__file__).resolve().parents[2]

EXIT_USAGE = 2  # argparse's own exit code
EXIT_OPS_ERROR = 125  # like `docker run`: the tool failed, not the command it was asked to run
EXIT_INTERRUPTED = 130

# The awslogs stream prefix of every container is its role, so a web task logs to
# `web/web/<task id>` in the group exported under the role's name.
WEB_ROLE = Role.WEB.value
# Tag on one-off tasks, so `aws ecs list-tasks --started-by one-off-manage` finds them.
ONE_OFF_STARTED_BY = "one-off-manage"
POLL_SECONDS = 3.0
DEFAULT_SHELL_COMMAND = "/bin/sh"
# What `pulumi stack output --show-secrets=false` prints in place of a secret value.
PULUMI_SECRET_PLACEHOLDER = "[secret]"  # noqa: S105 - a marker, not a password


class OpsError(Exception):
    """A failure the user can act on; the message says what happened and what to do."""


class StackNotDeployedError(OpsError):
    pass


class TaskNotStartedError(OpsError):
    pass


class NoRunningTaskError(OpsError):
    pass


# --- The deployed stack ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DeployedStack:
    """The outputs of a deployed stack that operations need, validated."""

    name: str
    region: str
    cluster_name: str
    web_service_name: str
    web_task_definition_arn: str
    web_container_name: str
    subnet_ids: tuple[str, ...]
    security_group_id: str
    assign_public_ip: bool
    web_log_group: str
    # Read only by rollback, which checks them itself (stacks deployed before they were exported).
    image_ref: str = ""
    repository_url: str = ""
    db_instance_identifier: str | None = None  # the RDS instance the stack uses (older stacks: None)
    protected: bool = False  # protectResources: Pulumi `protect` on the stateful resources

    @classmethod
    def from_outputs(
        cls, name: str, region: str, outputs: Mapping[str, Any], protected: bool = False
    ) -> DeployedStack:
        """Builds the stack from `pulumi stack output --json`; one error lists every bad output."""
        problems: list[str] = []

        def require(key: str, kind: type, valid: Callable[[Any], bool] = bool, want: str = "") -> Any:
            value = outputs.get(key)
            if key not in outputs:
                problems.append(f"{key} is missing")
            elif value == PULUMI_SECRET_PLACEHOLDER:
                problems.append(f"{key} is a secret output; it must be exported as a plain value")
            elif not isinstance(value, kind) or not valid(value):
                problems.append(f"{key} must be {want or 'a non-empty ' + kind.__name__}, got {value!r}")
            return value

        cluster_name = require("clusterName", str)
        web_service_name = require("webServiceName", str)
        web_task_definition_arn = require("webTaskDefinitionArn", str)
        web_container_name = require("webContainerName", str)
        subnet_ids = require(
            "serviceSubnetIds",
            list,
            lambda ids: bool(ids) and all(isinstance(subnet, str) for subnet in ids),
            "a non-empty list of subnet ids",
        )
        security_group_id = require("appSecurityGroupId", str)
        assign_public_ip = require("assignPublicIp", bool, lambda _: True, "true or false")
        log_group_names = require(
            "logGroupNames",
            dict,
            lambda groups: isinstance(groups.get(WEB_ROLE), str),
            f"a map with a {WEB_ROLE!r} group",
        )
        if problems:
            raise OpsError(
                f"stack {name!r} lacks outputs this tool needs ({'; '.join(problems)}). "
                f"Update it with the current program: scripts/deploy {name}"
            )
        return cls(
            name=name,
            region=region,
            cluster_name=cluster_name,
            web_service_name=web_service_name,
            web_task_definition_arn=web_task_definition_arn,
            web_container_name=web_container_name,
            subnet_ids=tuple(subnet_ids),
            security_group_id=security_group_id,
            assign_public_ip=assign_public_ip,
            web_log_group=log_group_names[WEB_ROLE],
            image_ref=str(outputs.get("imageRef") or ""),
            repository_url=str(outputs.get("ecrRepositoryUrl") or ""),
            db_instance_identifier=outputs.get("dbInstanceIdentifier"),
            protected=protected,
        )

    @property
    def network(self) -> FargateNetwork:
        """The web service's network, which one-off tasks share."""
        return FargateNetwork(self.subnet_ids, (self.security_group_id,), self.assign_public_ip)


def run_pulumi(stack: str, *args: str) -> str:
    """Runs one `pulumi` command for `stack` from the repository root and returns its stdout."""
    command = ["pulumi", *args, "--stack", stack, "--non-interactive"]
    try:
        # No terminal input: a passphrase prompt must fail with a message, not hang.
        result = subprocess.run(
            command, cwd=REPO_ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
        )
    except FileNotFoundError:
        raise OpsError(
            "the Pulumi CLI is not installed or not on PATH; it reads the stack's outputs. "
            "Install it: https://www.pulumi.com/docs/install/"
        ) from None
    if result.returncode != 0:
        message = result.stderr.strip() or result.stdout.strip()
        if "no stack named" in message:
            raise StackNotDeployedError(
                f"stack {stack!r} does not exist in the current Pulumi backend. "
                f"Deploy it with: scripts/deploy {stack}"
            )
        raise OpsError(f"`{shlex.join(command)}` failed: {message}")
    return result.stdout


def run_pulumi_json(stack: str, *args: str) -> dict[str, Any]:
    text = run_pulumi(stack, *args, "--json")
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        document = None
    if not isinstance(document, dict):
        raise OpsError(
            f"`pulumi {' '.join(args)} --json` printed something other than a JSON object: {text!r}"
        )
    return document


def read_stack(stack: str) -> DeployedStack:
    """Reads the stack's outputs and its region (`aws:region`, else AWS_REGION / AWS_DEFAULT_REGION)."""
    outputs = run_pulumi_json(stack, "stack", "output", "--show-secrets=false")
    if not outputs:
        raise StackNotDeployedError(
            f"stack {stack!r} has no outputs: it is not deployed. Deploy it with: scripts/deploy {stack}"
        )
    config = run_pulumi_json(stack, "config")
    region = (
        config.get("aws:region", {}).get("value")
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
    )
    if not region:
        raise OpsError(
            f"no AWS region for stack {stack!r}: set it with `pulumi config set aws:region <region> "
            f"--stack {stack}` or export AWS_REGION"
        )
    protected = str(config.get(f"{project_name()}:protectResources", {}).get("value")).lower() == "true"
    return DeployedStack.from_outputs(stack, region, outputs, protected)


def project_name() -> str:
    return str(yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())["name"])


# --- One-off tasks ------------------------------------------------------------------------------
def start_one_off_task(ecs: Any, stack: DeployedStack, command: Sequence[str]) -> str:
    """Starts the web task definition with `command` in the web container; returns the task ARN."""
    try:
        return ecs_tasks.start_task(
            ecs,
            stack.cluster_name,
            stack.web_task_definition_arn,
            stack.network,
            started_by=ONE_OFF_STARTED_BY,
            overrides={"containerOverrides": [{"name": stack.web_container_name, "command": list(command)}]},
        )
    except ecs_tasks.TaskStartError as error:
        verb = "refused to start" if error.rejected else "did not start"
        raise TaskNotStartedError(f"ECS {verb} the task: {error}") from None


def describe_one_off_task(ecs: Any, stack: DeployedStack, task_arn: str) -> TaskState:
    try:
        return ecs_tasks.describe_task(ecs, stack.cluster_name, task_arn, stack.web_container_name)
    except ecs_tasks.TaskNotFoundError as error:
        raise OpsError(
            f"task {task_id(task_arn)} is not known to cluster {stack.cluster_name}: {error}"
        ) from None


def web_log(logs: Any, stack: DeployedStack, task_arn: str) -> TaskLog:
    stream = ecs_tasks.log_stream_name(WEB_ROLE, stack.web_container_name, task_arn)
    return TaskLog(logs, stack.web_log_group, stream)


def follow_task(
    ecs: Any,
    log: TaskLog,
    stack: DeployedStack,
    task_arn: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
    poll_seconds: float = POLL_SECONDS,
) -> int:
    """Prints the task's log lines until it stops; returns the web container's exit code."""
    last_status = None
    while True:
        task = describe_one_off_task(ecs, stack, task_arn)
        if task.last_status != last_status:
            last_status = task.last_status
            print(f"task {task_id(task_arn)}: {last_status}", file=sys.stderr, flush=True)
        # Read after describing, so the lines written before STOPPED are all printed.
        for line in log.read_new_lines():
            print(line, flush=True)
        if task.stopped:
            return manage_exit_code(task)
        sleep(poll_seconds)


def manage_exit_code(stopped: TaskState) -> int:
    if stopped.exit_code is not None:
        return stopped.exit_code
    raise TaskNotStartedError(
        f"task {task_id(stopped.task_arn)} stopped before manage.py ran (no exit code): "
        f"{'; '.join(stopped.stop_details())}"
    )


# --- Interactive shell --------------------------------------------------------------------------
def find_shell_task(ecs: Any, stack: DeployedStack) -> str:
    """Returns the ARN of a running web task that accepts ECS Exec."""
    arns = ecs.list_tasks(
        cluster=stack.cluster_name, serviceName=stack.web_service_name, desiredStatus="RUNNING"
    )["taskArns"]
    tasks = ecs.describe_tasks(cluster=stack.cluster_name, tasks=arns)["tasks"] if arns else []
    running = [task for task in tasks if task["lastStatus"] == "RUNNING"]
    if not running:
        starting = f" ({len(tasks)} starting, try again shortly)" if tasks else ""
        raise NoRunningTaskError(
            f"no running task in service {stack.web_service_name} of cluster {stack.cluster_name}{starting}. "
            f"Check the service: aws ecs describe-services --region {stack.region} "
            f"--cluster {stack.cluster_name} --services {stack.web_service_name}"
        )
    exec_enabled = [task for task in running if task.get("enableExecuteCommand")]
    if not exec_enabled:
        raise OpsError(
            f"ECS Exec is off for the running tasks of service {stack.web_service_name}: "
            "enable execute command on the web service and redeploy, or use "
            f"`python -m infra.ops manage {stack.name} -- <command>`"
        )
    return str(exec_enabled[0]["taskArn"])


def execute_command_line(stack: DeployedStack, task_arn: str, command: str) -> str:
    return shlex.join(
        [
            "aws", "ecs", "execute-command",
            "--region", stack.region,
            "--cluster", stack.cluster_name,
            "--task", task_id(task_arn),
            "--container", stack.web_container_name,
            "--interactive",
            "--command", command,
        ]
    )  # fmt: skip


# --- Command line -------------------------------------------------------------------------------
ClientFactory = Callable[[str, str], Any]


def boto3_client(service: str, region: str) -> Any:
    return boto3.client(service, region_name=region)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m infra.ops",
        description="Operations on a deployed stack.",
        epilog=f"exit codes: manage.py's own; {EXIT_USAGE} bad arguments; {EXIT_OPS_ERROR} the operation "
        f"failed (reason on stderr); {EXIT_INTERRUPTED} interrupted (the task keeps running)",
    )
    commands = parser.add_subparsers(dest="operation", required=True)
    manage = commands.add_parser(
        "manage",
        help="run `manage.py ARGS` as a one-off ECS task, stream its log, exit with its exit code",
        description="Example: python -m infra.ops manage dev -- migrate --noinput",
    )
    manage.add_argument("stack", help="Pulumi stack name, e.g. dev")
    manage.add_argument(
        "manage_args", nargs=argparse.REMAINDER, metavar="-- ARGS", help="manage.py arguments"
    )
    shell = commands.add_parser(
        "shell", help="print the `aws ecs execute-command` line for a running web task"
    )
    shell.add_argument("stack", help="Pulumi stack name, e.g. dev")
    shell.add_argument(
        "--command", default=DEFAULT_SHELL_COMMAND, help=f"command to run (default {DEFAULT_SHELL_COMMAND})"
    )
    rollback = commands.add_parser(
        "rollback", help="release an image the stack keeps (by digest, no build) through `pulumi up`"
    )
    rollback.add_argument("stack", help="Pulumi stack name, e.g. prod")
    rollback.add_argument("--to", required=True, help="sha256:<digest> (or a full reference), or `previous`")
    rollback.add_argument("--force", action="store_true", help="release even if the release check refuses")
    rollback.add_argument(
        "--yes", action="store_true", help="run `pulumi up`; without it, only say what it would do"
    )
    check = commands.add_parser("release-check", help="the pull request's release check and summary")
    check.add_argument("stack", help="the stack the change will be deployed to, e.g. dev")
    check.add_argument("--summary", type=Path, help="also write the Markdown summary to this file")
    restoring = commands.add_parser(
        "restore",
        help="restore the stack's database to a point in time into a new instance; print how to adopt it",
        description="Example: python -m infra.ops restore prod --to 2026-12-01T11:55:00Z",
    )
    restoring.add_argument("stack", help="Pulumi stack name, e.g. prod")
    when = restoring.add_mutually_exclusive_group(required=True)
    when.add_argument("--to", metavar="TIME", help="UTC time to restore to, ISO 8601 (2026-12-01T11:55:00Z)")
    when.add_argument(
        "--latest", action="store_true", help="the latest restorable time (about 5 minutes ago)"
    )
    restoring.add_argument(
        "--no-wait", action="store_true", help="print the next steps without waiting for the instance"
    )
    return parser


def _manage(
    stack: DeployedStack,
    manage_args: list[str],
    client_factory: ClientFactory,
    sleep: Callable[[float], None],
) -> int:
    ecs = client_factory("ecs", stack.region)
    task_arn = start_one_off_task(ecs, stack, ["python", "manage.py", *manage_args])
    log = web_log(client_factory("logs", stack.region), stack, task_arn)
    print(
        f"started task {task_id(task_arn)} on cluster {stack.cluster_name}; log {log.group} {log.stream}",
        file=sys.stderr,
        flush=True,
    )
    try:
        exit_code = follow_task(ecs, log, stack, task_arn, sleep=sleep)
    except KeyboardInterrupt:
        stop = shlex.join(
            ["aws", "ecs", "stop-task", "--region", stack.region, "--cluster", stack.cluster_name,
             "--task", task_id(task_arn)]
        )  # fmt: skip
        print(f"\nstopped following; the task keeps running. Stop it with: {stop}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if exit_code != 0:
        print(f"manage.py {shlex.join(manage_args)} exited with code {exit_code}", file=sys.stderr)
    return exit_code


def _rollback(
    stack: DeployedStack,
    args: argparse.Namespace,
    client_factory: ClientFactory,
    runner: Callable[[Sequence[str]], int] | None,
) -> int:
    from infra.ops import rollback

    plan = rollback.plan_rollback(
        client_factory("ecs", stack.region), client_factory("ecr", stack.region), stack, args.to
    )
    command = plan.command(rollback.project_name(), args.force)
    print(f"stack {stack.name}: {plan.current.digest} -> {plan.target.digest}", file=sys.stderr)
    if not args.yes:
        print(f"would run (add --yes to roll back): {shlex.join(command)}", file=sys.stderr)
        return 0
    exit_code = rollback.run_keeping_stack_file(command, stack.name, runner or rollback.run_in_repository)
    if exit_code != 0:
        print(
            f"rollback of {stack.name} did not complete (`pulumi up` exited with {exit_code}); if the "
            "release check refused it, its reasons are above: --force releases anyway",
            file=sys.stderr,
        )
    return exit_code


def _restore(
    stack: DeployedStack,
    args: argparse.Namespace,
    client_factory: ClientFactory,
    sleep: Callable[[float], None],
) -> int:
    if not stack.db_instance_identifier:
        raise OpsError(
            f"stack {stack.name!r} does not export dbInstanceIdentifier. "
            f"Update it with the current program: scripts/deploy {stack.name}"
        )
    rds = client_factory("rds", stack.region)
    try:
        source = restore.describe_source(rds, stack.db_instance_identifier)
        restore_time = None if args.latest else restore.parse_restore_time(args.to)
        if restore_time is not None:
            restore.check_window(
                restore_time, restore.earliest_restorable(rds, source), source.latest_restorable
            )
        named_after = restore_time or source.latest_restorable or datetime.now(UTC)
        target = restore.restored_identifier(source.identifier, named_after)
        restore.start_restore(rds, restore.restore_request(source, target, restore_time))
        point = "the latest restorable time" if restore_time is None else restore_time.isoformat()
        print(f"restoring {source.identifier} to {point} as {target}", file=sys.stderr, flush=True)
        if not args.no_wait:
            restore.wait_until_available(
                rds,
                target,
                sleep=sleep,
                progress=lambda status: print(f"{target}: {status}", file=sys.stderr),
            )
    except restore.RestoreError as error:
        raise OpsError(str(error)) from None
    print(restore.next_steps(stack.name, project_name(), source, target, protected=stack.protected))
    return 0


def _operation(
    args: argparse.Namespace,
    stack_reader: Callable[[str], DeployedStack],
    client_factory: ClientFactory,
    sleep: Callable[[float], None],
    runner: Callable[[Sequence[str]], int] | None,
) -> int:
    """Runs the chosen operation; its exit code."""
    if args.operation == "release-check":
        from infra.ops.release_check import run_release_check

        return run_release_check(args.stack, args.summary)
    stack = stack_reader(args.stack)
    if args.operation == "manage":
        return _manage(stack, args.manage_args, client_factory, sleep)
    if args.operation == "rollback":
        return _rollback(stack, args, client_factory, runner)
    if args.operation == "restore":
        return _restore(stack, args, client_factory, sleep)
    task_arn = find_shell_task(client_factory("ecs", stack.region), stack)
    print(execute_command_line(stack, task_arn, args.command))
    return 0


def main(
    argv: Sequence[str] | None = None,
    *,
    stack_reader: Callable[[str], DeployedStack] = read_stack,
    client_factory: ClientFactory = boto3_client,
    sleep: Callable[[float], None] = time.sleep,
    runner: Callable[[Sequence[str]], int] | None = None,
) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.operation == "manage" and not args.manage_args:
        parser.error("give the manage.py command after the stack, e.g.: manage dev -- migrate --noinput")
    try:
        return _operation(args, stack_reader, client_factory, sleep, runner)
    except OpsError as error:
        print(f"error: {error}", file=sys.stderr)
    except ClientError as error:
        print(f"error: AWS refused the request: {client_error_text(error)}", file=sys.stderr)
    except BotoCoreError as error:
        print(f"error: could not reach AWS: {error}", file=sys.stderr)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_OPS_ERROR
