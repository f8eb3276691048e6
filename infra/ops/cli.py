"""Day-2 operations on a deployed stack: one-off `manage.py` commands and an ECS Exec shell.

    python -m infra.ops manage <stack> -- <manage.py arguments...>
    python -m infra.ops shell <stack> [--command CMD]
    python -m infra.ops rollback <stack> [--to <digest|previous>] [--force] [--yes]
    python -m infra.ops release-check <stack> [--summary FILE]
    python -m infra.ops restore <stack> (--to TIME | --latest) [--no-wait]
    python -m infra.ops schedules <stack>
    python -m infra.ops dead-letters <stack> list|replay|drop [ID... | --all]

`manage` starts the web task definition as a one-off Fargate task (same subnets, security group
and secrets as the web service) with the command `python manage.py <arguments>`, streams the
task's CloudWatch log to stdout and exits with the command's exit code. `shell` prints the
`aws ecs execute-command` line that opens an interactive shell in a running web task. `rollback`
has ECS roll back an open web deployment, or releases an image the stack keeps (rollback.py);
`release-check` is the pull request's release check (release_check.py). `restore` restores the
stack's database to a point in time into a new instance and prints the configuration change that
points the stack at it (restore.py). `schedules` lists each Beat schedule entry with its last run,
next run, last success and state, judged late by the stack's own alarm thresholds (`manage.py
schedules` in a one-off task). `dead-letters` lists, replays or drops the task messages in the
dead-letter list (`manage.py dead_letters` in a one-off task; manage_commands.py).

Exit codes:
    0-255  `manage`: the exit code of `manage.py` in the task; `shell`: 0 once the line is printed;
           `rollback`: 0 once ECS rolls an open deployment back, else the exit code of its
           `pulumi up`; `release-check`: 1 when the change is refused;
           `restore`: 0 once the restored instance is available (or, with --no-wait, being created)
    2      the command line was not understood
    125    the operation could not be carried out (stack not deployed, the Pulumi CLI missing,
           the task did not start, no running web task, an AWS error); the reason is on stderr
    130    interrupted while following the task; the task itself keeps running

This is the command front end; the deployed stack is read from `pulumi stack output` by
`stack.read_stack`, one-off tasks and the shell line are `tasks.py`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from infra.ecs_tasks import client_error_text, task_id
from infra.ops import restore, rollback
from infra.ops.manage_commands import MANAGE_OPERATIONS, MANAGE_OPERATIONS_BY_NAME
from infra.ops.release_check import run_release_check
from infra.ops.stack import ClientFactory, DeployedStack, OpsError, boto3_client, project_name, read_stack
from infra.ops.tasks import (
    DEFAULT_SHELL_COMMAND,
    execute_command_line,
    find_shell_task,
    follow_task,
    one_off_log,
    start_one_off_task,
)

EXIT_USAGE = 2  # argparse's own exit code
EXIT_OPS_ERROR = 125  # like `docker run`: the tool failed, not the command it was asked to run
EXIT_INTERRUPTED = 130


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
    _add_release_commands(commands)
    _add_restore_command(commands)
    for operation in MANAGE_OPERATIONS:
        operation.add_to(commands)
    return parser


def _add_release_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rollback = commands.add_parser(
        "rollback",
        help="have ECS roll back an open web deployment; else release an image the stack keeps (by "
        "digest, no build) through `pulumi up`",
    )
    rollback.add_argument("stack", help="Pulumi stack name, e.g. prod")
    rollback.add_argument(
        "--to",
        help="sha256:<digest> (or a full reference), or `previous`; without it: the open web deployment "
        "if there is one, else `previous`",
    )
    rollback.add_argument("--force", action="store_true", help="release even if the release check refuses")
    rollback.add_argument(
        "--yes", action="store_true", help="run `pulumi up`; without it, only say what it would do"
    )
    check = commands.add_parser("release-check", help="the pull request's release check and summary")
    check.add_argument("stack", help="the stack the change will be deployed to, e.g. dev")
    check.add_argument("--summary", type=Path, help="also write the Markdown summary to this file")


def _add_restore_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _manage(
    stack: DeployedStack,
    manage_args: list[str],
    client_factory: ClientFactory,
    sleep: Callable[[float], None],
) -> int:
    ecs = client_factory("ecs", stack.region)
    task_arn = start_one_off_task(ecs, stack, ["python", "manage.py", *manage_args])
    log = one_off_log(client_factory("logs", stack.region), stack, task_arn)
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
    ecs = client_factory("ecs", stack.region)
    deployment = rollback.open_deployment(ecs, stack)
    if deployment is not None and args.to is None:
        return _roll_back_open_deployment(ecs, stack, deployment, args.yes)
    if deployment is not None and not deployment.rolling_back:
        raise OpsError(
            f"the web service of {stack.name} has an open deployment {deployment}: roll it back first "
            f"(python -m infra.ops rollback {stack.name} --yes), then release another image"
        )
    plan = rollback.plan_rollback(
        ecs, client_factory("ecr", stack.region), stack, args.to or rollback.PREVIOUS
    )
    command = plan.command(project_name(), args.force)
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


def _roll_back_open_deployment(
    ecs: object, stack: DeployedStack, deployment: rollback.OpenDeployment, yes: bool
) -> int:
    if deployment.rolling_back:
        print(f"ECS is already rolling back {deployment}", file=sys.stderr)
        return 0
    if not yes:
        print(f"would have ECS roll back {deployment} (add --yes to roll back)", file=sys.stderr)
        return 0
    rollback.stop_deployment(ecs, deployment)
    print(
        f"ECS rolls back {deployment}: traffic returns to the revision that served before it. The "
        f"stack still names the new image; fix it and deploy, or release the previous one: "
        f"python -m infra.ops rollback {stack.name} --to previous --yes",
        file=sys.stderr,
    )
    return 0


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
        return run_release_check(args.stack, args.summary)
    stack = stack_reader(args.stack)
    if args.operation == "manage":
        return _manage(stack, args.manage_args, client_factory, sleep)
    if args.operation == "rollback":
        return _rollback(stack, args, client_factory, runner)
    if args.operation == "restore":
        return _restore(stack, args, client_factory, sleep)
    if args.operation in MANAGE_OPERATIONS_BY_NAME:
        manage_args = MANAGE_OPERATIONS_BY_NAME[args.operation].manage_arguments(args)
        return _manage(stack, manage_args, client_factory, sleep)
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
