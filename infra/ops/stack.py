"""A deployed stack as the operations see it: its outputs, its region, and the Pulumi CLI that reads them.

Everything that talks to AWS is a plain function over boto3 clients passed in; this module is the
library the command front end (cli.py), rollback, restore and the release check share.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import yaml

from infra.app_contract import Role
from infra.ecs_tasks import FargateNetwork
from infra.outputs import StackOutput

REPO_ROOT = Path(__file__).resolve().parents[2]
# The awslogs stream prefix of every container is its role (`migrate/migrate/<task id>`).
# One-off commands run in the migrate task definition: the app's image, environment and secrets in
# a task of one container (a web task definition may hold more: a preview's runs a worker and Beat
# beside web, and a second Beat must never start).
ONE_OFF_ROLE = Role.MIGRATE.value
# What `pulumi stack output --show-secrets=false` prints in place of a secret value.
PULUMI_SECRET_PLACEHOLDER = "[secret]"  # noqa: S105 - a marker, not a password
ClientFactory = Callable[[str, str], Any]


class OpsError(Exception):
    """A failure the user can act on; the message says what happened and what to do."""


class StackNotDeployedError(OpsError):
    pass


class TaskNotStartedError(OpsError):
    pass


class NoRunningTaskError(OpsError):
    pass


@dataclass(frozen=True)
class DeployedStack:
    """The outputs of a deployed stack that operations need, validated."""

    name: str
    region: str
    cluster_name: str
    web_service_name: str
    web_task_definition_arn: str  # rollback reads the images of its revisions
    web_container_name: str
    one_off_task_definition_arn: str  # the migrate task definition (ONE_OFF_ROLE)
    subnet_ids: tuple[str, ...]
    security_group_id: str
    assign_public_ip: bool
    one_off_log_group: str
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

        cluster_name = require(StackOutput.CLUSTER_NAME, str)
        web_service_name = require(StackOutput.WEB_SERVICE_NAME, str)
        web_task_definition_arn = require(StackOutput.WEB_TASK_DEFINITION_ARN, str)
        web_container_name = require(StackOutput.WEB_CONTAINER_NAME, str)
        one_off_task_definition_arn = require(StackOutput.MIGRATE_TASK_DEFINITION_ARN, str)
        subnet_ids = require(
            StackOutput.SERVICE_SUBNET_IDS,
            list,
            lambda ids: bool(ids) and all(isinstance(subnet, str) for subnet in ids),
            "a non-empty list of subnet ids",
        )
        security_group_id = require(StackOutput.APP_SECURITY_GROUP_ID, str)
        assign_public_ip = require(StackOutput.ASSIGN_PUBLIC_IP, bool, lambda _: True, "true or false")
        log_group_names = require(
            StackOutput.LOG_GROUP_NAMES,
            dict,
            lambda groups: isinstance(groups.get(ONE_OFF_ROLE), str),
            f"a map with a {ONE_OFF_ROLE!r} group",
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
            one_off_task_definition_arn=one_off_task_definition_arn,
            subnet_ids=tuple(subnet_ids),
            security_group_id=security_group_id,
            assign_public_ip=assign_public_ip,
            one_off_log_group=log_group_names[ONE_OFF_ROLE],
            image_ref=str(outputs.get(StackOutput.IMAGE_REF) or ""),
            repository_url=str(outputs.get(StackOutput.ECR_REPOSITORY_URL) or ""),
            db_instance_identifier=outputs.get(StackOutput.DB_INSTANCE_IDENTIFIER),
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


def boto3_client(service: str, region: str) -> Any:
    return boto3.client(service, region_name=region)
