"""ECS: task definitions, their containers, services and the cluster (Security Hub ECS controls, and
the one Celery Beat: one task, stopped before its successor starts, never canaried)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence

from pulumi_policy import PolicyResource

from .shared import (
    DYNAMIC_RESOURCE,
    ECS_CLUSTER,
    ECS_SERVICE,
    LOG_GROUP,
    NAT_GATEWAY,
    TASK_DEFINITION,
    Props,
    ResourceCheck,
    Rule,
    as_list,
    of_type,
    resource_rule,
    stack_rule,
)

# Plain environment variable names that look like they carry a secret (ECS.8 names the AWS
# credential variables; Trivy AVD-AWS-0036 flags these words in any name).
SECRET_NAME_WORDS = ("SECRET", "PASSWORD", "TOKEN", "KEY")
SECRET_NAMES = frozenset({"ECS_ENGINE_AUTH_DATA"})
# Names with one of those words that carry no credential, with the only values each may take: the
# app's Redis key prefix (infra/app_contract.py REDIS_KEY_PREFIX_PATTERN), empty or `pr-N:`.
NOT_SECRETS = {"REDIS_KEY_PREFIX": re.compile(r"([a-z0-9][a-z0-9-]{0,40}:)?")}
URL_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]+@", re.IGNORECASE)
BEAT_COMMAND = ("celery", "beat")


def _containers(task_definition: Props) -> list[Props]:
    definitions = task_definition.get("containerDefinitions")
    return as_list(json.loads(definitions) if isinstance(definitions, str) else definitions)


def _each_container(check: Callable[[Props], Iterable[str]]) -> ResourceCheck:
    def check_all(task_definition: Props) -> Iterator[str]:
        for container in _containers(task_definition):
            for problem in check(container):
                yield f"container {container.get('name')!r}: {problem}"

    return check_all


def _not_privileged(container: Props) -> Iterator[str]:
    if container.get("privileged") is True:
        yield "privileged must not be true"


def _read_only_root(container: Props) -> Iterator[str]:
    if container.get("readonlyRootFilesystem") is not True:
        yield "readonlyRootFilesystem must be true (mount a writable volume where files are written)"


def _non_root_user(container: Props) -> Iterator[str]:
    user = str(container.get("user") or "")
    if user.split(":")[0] in ("", "root", "0"):
        yield f"user must be set to a non-root user, not {user or 'unset'!r}"


def _logs_configured(container: Props) -> Iterator[str]:
    if not (container.get("logConfiguration") or {}).get("logDriver"):
        yield "logConfiguration.logDriver must be set"


def _no_plain_secrets(container: Props) -> Iterator[str]:
    for variable in as_list(container.get("environment")):
        name = str(variable.get("name", ""))
        value = str(variable.get("value", ""))
        if name in NOT_SECRETS and NOT_SECRETS[name].fullmatch(value):
            continue
        if name in SECRET_NAMES or any(word in name.upper() for word in SECRET_NAME_WORDS):
            yield f"environment variable {name} looks like a secret: pass it in `secrets` (valueFrom)"
        elif URL_WITH_PASSWORD.match(value):
            yield f"environment variable {name} holds a URL with a password: pass it in `secrets` (valueFrom)"


def _awsvpc(task_definition: Props) -> Iterator[str]:
    if task_definition.get("networkMode") != "awsvpc":
        yield f"networkMode must be 'awsvpc', not {task_definition.get('networkMode')!r}"


def _no_public_ip_behind_nat(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    if not of_type(resources, NAT_GATEWAY):
        return  # without a NAT, tasks in public subnets need a public IP to reach ECR
    for service in of_type(resources, ECS_SERVICE):
        if (service.props.get("networkConfiguration") or {}).get("assignPublicIp") is True:
            yield (
                service.urn,
                "networkConfiguration.assignPublicIp must be false: the stack has a NAT gateway",
            )


def _runs_beat(task_definition: PolicyResource) -> bool:
    return any(
        all(word in as_list(container.get("command")) for word in BEAT_COMMAND)
        for container in _containers(task_definition.props)
    )


def _single_beat(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    beat_arns = {task.props.get("arn") for task in of_type(resources, TASK_DEFINITION) if _runs_beat(task)}
    for service in of_type(resources, ECS_SERVICE):
        if service.props.get("taskDefinition") not in beat_arns:
            continue
        if service.props.get("desiredCount") != 1:
            yield (
                service.urn,
                f"desiredCount of the Beat service must be 1, not {service.props.get('desiredCount')}",
            )
        if service.props.get("deploymentMaximumPercent") != 100:
            yield (
                service.urn,
                "deploymentMaximumPercent of the Beat service must be 100 (never two schedulers)",
            )


def _beat_stop_before_start(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    """A Beat deploy stops the old scheduler before the new one starts: a rolling deployment with a
    minimum of 0 % (every other ECS strategy runs both revisions for a while), and no worker
    canary runs Beat's task definition (a canary is a second task of it)."""
    beat_arns = {task.props.get("arn") for task in of_type(resources, TASK_DEFINITION) if _runs_beat(task)}
    for service in of_type(resources, ECS_SERVICE):
        if service.props.get("taskDefinition") not in beat_arns:
            continue
        strategy = (service.props.get("deploymentConfiguration") or {}).get("strategy") or "ROLLING"
        if strategy != "ROLLING":
            yield service.urn, f"the Beat service deploys ROLLING, not {strategy} (two schedulers at once)"
        if service.props.get("deploymentMinimumHealthyPercent") != 0:
            yield (
                service.urn,
                "deploymentMinimumHealthyPercent of the Beat service must be 0: the old Beat stops before "
                "the new one starts",
            )
    for resource in of_type(resources, DYNAMIC_RESOURCE):
        if (
            resource.props.get("window_minutes") is not None
            and resource.props.get("task_definition_arn") in beat_arns
        ):
            yield resource.urn, "Beat is never canaried: a canary task of it is a second scheduler"


def _exec_audit_logging(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    log_groups = {group.props.get("name") for group in of_type(resources, LOG_GROUP)}
    for cluster in of_type(resources, ECS_CLUSTER):
        settings = (cluster.props.get("configuration") or {}).get("executeCommandConfiguration") or {}
        logging = settings.get("logConfiguration") or {}
        if settings.get("logging") != "OVERRIDE" or logging.get("cloudWatchLogGroupName") not in log_groups:
            yield cluster.urn, "ECS Exec sessions must be logged (OVERRIDE) to a log group of this stack"
        elif settings.get("kmsKeyId") and logging.get("cloudWatchEncryptionEnabled") is not True:
            yield cluster.urn, "with a KMS key, cloudWatchEncryptionEnabled must be true"


RULES: tuple[Rule, ...] = (
    resource_rule(
        "ecs-not-privileged",
        "ECS containers are not privileged",
        ["ECS.4"],
        [TASK_DEFINITION],
        _each_container(_not_privileged),
    ),
    resource_rule(
        "ecs-read-only-root-filesystem",
        "ECS containers have a read-only root file system",
        ["ECS.5"],
        [TASK_DEFINITION],
        _each_container(_read_only_root),
    ),
    resource_rule(
        "ecs-non-root-user",
        "ECS containers run as a non-root user",
        ["ECS.20"],
        [TASK_DEFINITION],
        _each_container(_non_root_user),
    ),
    resource_rule(
        "ecs-awsvpc-network-mode",
        "ECS tasks use the awsvpc network mode",
        ["ECS.17"],
        [TASK_DEFINITION],
        _awsvpc,
    ),
    resource_rule(
        "ecs-log-configuration",
        "ECS containers send their logs somewhere",
        ["ECS.9"],
        [TASK_DEFINITION],
        _each_container(_logs_configured),
    ),
    resource_rule(
        "ecs-no-secrets-in-environment",
        "ECS containers get secrets through `secrets`, never `environment`",
        ["ECS.8"],
        [TASK_DEFINITION],
        _each_container(_no_plain_secrets),
    ),
    stack_rule(
        "ecs-no-public-ip-behind-nat",
        "ECS tasks get no public IP when a NAT gateway exists",
        ["ECS.2"],
        _no_public_ip_behind_nat,
    ),
    stack_rule(
        "ecs-single-beat", "Celery Beat runs as exactly one task, also during deploys", [], _single_beat
    ),
    stack_rule(
        "ecs-beat-stop-before-start",
        "Celery Beat deploys stop-before-start (rolling, minimum 0 %) and is never canaried",
        [],
        _beat_stop_before_start,
    ),
    stack_rule(
        "ecs-exec-audit-logging",
        "ECS Exec sessions are recorded in a log group of the stack",
        [],
        _exec_audit_logging,
    ),
)
