"""The shared preview base against the open pull requests: what previews left on it.

    preview_base.py routes --base-stack preview-base --repository owner/name [--project djcelery] [--remove]
    preview_base.py tenants --base-stack preview-base --keep pr-1,pr-7 [--remove]

Every AWS resource carries its stack's tags (infra/naming.py: `project`, `stack`), so a preview's
host-header rule on the base's HTTPS listener and its target group in the base's network say
`stack=pr-<N>`. Those whose pull request is no longer open are orphans (a destroy that failed or
never ran, a stack removed by hand): listed on stderr and, with --remove, deleted, rules first (a
target group a rule still forwards to cannot be deleted: ResourceInUse). Full-copy PR stacks have
their own network, so their target groups are never candidates. Prints for $GITHUB_OUTPUT
`keep=pr-1,pr-7` (the previews of open pull requests, for `preview_tenant orphans --keep`) and
`orphans=<count>`. Exits 1 with the reason when the base's load balancer cannot be found.

`tenants` runs `manage.py preview_tenant orphans --keep ... [--remove]` (databases, roles and broker
key prefixes of previews not kept) as a one-off task of the base's `tenant` task definition, read
from the base's outputs (tenantTaskDefinitionArn, tenantContainerName, tenantLogGroupName, the
cluster and its network), prints what it logged and exits with its exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from pr_stacks import open_pull_requests, pull_request_number, repository_argument

from infra import app_contract, ecs_tasks
from infra.ops.stack import run_pulumi_json
from infra.outputs import StackOutput

# elbv2 DescribeTags: "You can specify up to 20 resources in a single call" (botocore
# DescribeTagsInput, ResourceArns).
TAGS_PER_CALL = 20


@dataclass(frozen=True)
class Orphan:
    stack: str
    arn: str


@dataclass(frozen=True)
class OrphanRoutes:
    rules: list[Orphan]
    target_groups: list[Orphan]

    def count(self) -> int:
        return len(self.rules) + len(self.target_groups)


def tags_of(elbv2: Any, arns: Sequence[str]) -> dict[str, dict[str, str]]:
    tags: dict[str, dict[str, str]] = {}
    for start in range(0, len(arns), TAGS_PER_CALL):
        described = elbv2.describe_tags(ResourceArns=list(arns[start : start + TAGS_PER_CALL]))
        for description in described["TagDescriptions"]:
            pairs = description.get("Tags", [])
            tags[description["ResourceArn"]] = {tag["Key"]: tag["Value"] for tag in pairs}
    return tags


def base_load_balancer(elbv2: Any, project: str, base_stack: str) -> dict[str, Any]:
    """The base's load balancer, found by its stack's tags."""
    balancers = [
        balancer
        for page in elbv2.get_paginator("describe_load_balancers").paginate()
        for balancer in page["LoadBalancers"]
    ]
    tags = tags_of(elbv2, [balancer["LoadBalancerArn"] for balancer in balancers])
    wanted = {"project": project, "stack": base_stack}
    found = [
        balancer
        for balancer in balancers
        if wanted.items() <= tags.get(balancer["LoadBalancerArn"], {}).items()
    ]
    if len(found) != 1:
        raise LookupError(f"{len(found)} load balancers tagged project={project} stack={base_stack}, not 1")
    return found[0]


def https_listener(elbv2: Any, load_balancer_arn: str) -> str:
    listeners = [
        listener
        for page in elbv2.get_paginator("describe_listeners").paginate(LoadBalancerArn=load_balancer_arn)
        for listener in page["Listeners"]
        if listener["Protocol"] == "HTTPS"
    ]
    if len(listeners) != 1:
        raise LookupError(f"expected one HTTPS listener on the base's load balancer, found {len(listeners)}")
    return str(listeners[0]["ListenerArn"])


def orphan_routes(elbv2: Any, project: str, base_stack: str, open_pull_requests: set[int]) -> OrphanRoutes:
    balancer = base_load_balancer(elbv2, project, base_stack)
    listener = https_listener(elbv2, balancer["LoadBalancerArn"])
    rules = [
        rule["RuleArn"]
        for page in elbv2.get_paginator("describe_rules").paginate(ListenerArn=listener)
        for rule in page["Rules"]
        if not rule["IsDefault"]
    ]
    groups = [
        group["TargetGroupArn"]
        for page in elbv2.get_paginator("describe_target_groups").paginate()
        for group in page["TargetGroups"]
        if group.get("VpcId") == balancer["VpcId"]
    ]
    return OrphanRoutes(
        rules=_orphans(elbv2, rules, project, open_pull_requests),
        target_groups=_orphans(elbv2, groups, project, open_pull_requests),
    )


def _orphans(elbv2: Any, arns: Sequence[str], project: str, open_pull_requests: set[int]) -> list[Orphan]:
    found = []
    for arn, tags in tags_of(elbv2, arns).items():
        number = pull_request_number(tags.get("stack", ""))
        if tags.get("project") == project and number is not None and number not in open_pull_requests:
            found.append(Orphan(tags["stack"], arn))
    return sorted(found, key=lambda orphan: (pull_request_number(orphan.stack) or 0, orphan.arn))


def remove(elbv2: Any, orphans: OrphanRoutes) -> None:
    for rule in orphans.rules:
        elbv2.delete_rule(RuleArn=rule.arn)
    for group in orphans.target_groups:
        elbv2.delete_target_group(TargetGroupArn=group.arn)


def report(orphans: OrphanRoutes, removed: bool) -> Iterable[str]:
    verb = "removed" if removed else "orphan"
    for kind, found in (("listener rule", orphans.rules), ("target group", orphans.target_groups)):
        for orphan in found:
            yield f"{verb} {kind} of {orphan.stack}: {orphan.arn}"
    yield f"{orphans.count()} orphan rule(s) and target group(s){' removed' if removed else ''}"


# Marks the janitor's tasks, so `aws ecs list-tasks --started-by preview-janitor` finds them.
STARTED_BY = "preview-janitor"
TENANTS_TIMEOUT_SECONDS = 15 * 60
POLL_SECONDS = 5.0


@dataclass(frozen=True)
class TenantTask:
    """The base's one-off tenant task, as its outputs name it."""

    cluster: str
    task_definition_arn: str
    container_name: str
    log_group_name: str
    network: ecs_tasks.FargateNetwork

    @classmethod
    def from_outputs(cls, outputs: Mapping[str, Any]) -> TenantTask:
        keys = (
            StackOutput.CLUSTER_ARN,
            StackOutput.TENANT_TASK_DEFINITION_ARN,
            StackOutput.TENANT_CONTAINER_NAME,
            StackOutput.TENANT_LOG_GROUP_NAME,
            StackOutput.SERVICE_SUBNET_IDS,
            StackOutput.APP_SECURITY_GROUP_ID,
        )
        missing = [key.value for key in keys if not outputs.get(key)]
        if missing:
            raise LookupError(
                f"the base has no output {', '.join(missing)}; update it with the current program"
            )
        return cls(
            outputs[StackOutput.CLUSTER_ARN],
            outputs[StackOutput.TENANT_TASK_DEFINITION_ARN],
            outputs[StackOutput.TENANT_CONTAINER_NAME],
            outputs[StackOutput.TENANT_LOG_GROUP_NAME],
            ecs_tasks.FargateNetwork(
                tuple(outputs[StackOutput.SERVICE_SUBNET_IDS]),
                (outputs[StackOutput.APP_SECURITY_GROUP_ID],),
                bool(outputs.get(StackOutput.ASSIGN_PUBLIC_IP)),
            ),
        )


def orphan_tenants(
    ecs: Any,
    logs: Any,
    task: TenantTask,
    keep: str,
    remove: bool,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Runs `preview_tenant orphans` in the base's tenant task, prints its log; its exit code."""
    command = [
        *app_contract.preview_tenant_command("orphans"),
        "--keep",
        keep,
        *(["--remove"] if remove else []),
    ]
    task_arn = ecs_tasks.start_task(
        ecs,
        task.cluster,
        task.task_definition_arn,
        task.network,
        started_by=STARTED_BY,
        overrides={"containerOverrides": [{"name": task.container_name, "command": command}]},
    )
    # The tenant container is the migrate role's: its awslogs stream prefix is the role.
    stream = ecs_tasks.log_stream_name(app_contract.Role.MIGRATE.value, task.container_name, task_arn)
    log = ecs_tasks.TaskLog(logs, task.log_group_name, stream)
    deadline = clock() + TENANTS_TIMEOUT_SECONDS
    while True:
        state = ecs_tasks.describe_task(ecs, task.cluster, task_arn, task.container_name)
        for line in log.read_new_lines():  # after describing: every line written before STOPPED
            print(line, file=sys.stderr)
        if state.stopped:
            if state.exit_code is None:
                print(
                    f"task {task_arn} stopped before the command ran: {'; '.join(state.stop_details())}",
                    file=sys.stderr,
                )
                return 1
            return state.exit_code
        if clock() > deadline:
            print(
                f"task {task_arn} still runs after {TENANTS_TIMEOUT_SECONDS} s; left running", file=sys.stderr
            )
            return 1
        sleep(POLL_SECONDS)


def tenants(args: argparse.Namespace) -> None:
    outputs = run_pulumi_json(args.base_stack, "stack", "output", "--show-secrets=false")
    try:
        task = TenantTask.from_outputs(outputs)
    except LookupError as error:
        sys.exit(f"preview base {args.base_stack}: {error}")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    ecs, logs = boto3.client("ecs", region_name=region), boto3.client("logs", region_name=region)
    try:
        code = orphan_tenants(ecs, logs, task, args.keep, args.remove)
    except ecs_tasks.TaskStartError as error:
        sys.exit(f"preview base {args.base_stack}: ECS did not start the tenant task: {error}")
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    routes = commands.add_parser("routes", help="rules and target groups of previews of closed pull requests")
    routes.add_argument("--base-stack", required=True, help="the base's stack name, e.g. preview-base")
    routes.add_argument("--repository", type=repository_argument, required=True)
    routes.add_argument("--project", default="djcelery")
    routes.add_argument("--remove", action="store_true")
    tenant_parser = commands.add_parser(
        "tenants", help="databases, roles and key prefixes of previews not kept"
    )
    tenant_parser.add_argument("--base-stack", required=True, help="the base's stack name, e.g. preview-base")
    tenant_parser.add_argument(
        "--keep", required=True, help="the previews to keep, e.g. pr-1,pr-7 (routes' keep=)"
    )
    tenant_parser.add_argument("--remove", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "tenants":
        tenants(args)
        return

    open_numbers = open_pull_requests(args.repository)
    elbv2 = boto3.client("elbv2")
    try:
        orphans = orphan_routes(elbv2, args.project, args.base_stack, open_numbers)
    except LookupError as error:
        sys.exit(f"preview base {args.base_stack}: {error}")
    if args.remove:
        remove(elbv2, orphans)
    for line in report(orphans, args.remove):
        print(line, file=sys.stderr)
    print("keep=" + ",".join(f"pr-{number}" for number in sorted(open_numbers)))
    print(f"orphans={orphans.count()}")


if __name__ == "__main__":
    main()
