"""`python -m infra.ops rollback <stack> [--to <digest|previous>] [--force] [--yes]`.

While a web deployment is open (a canary, linear or blue/green deployment shifting traffic or
baking, or a rolling one in progress), `rollback <stack>` asks ECS to roll it back
(StopServiceDeployment, stopType ROLLBACK, on the deployment ListServiceDeployments names): during
the bake that only moves the traffic back, no task starts. The stack's config still names the new
image, so fix it and deploy, or release the previous image as below to make them agree.

Otherwise, a rollback is a release of an image the stack's repository still keeps, by digest, with no build:
`pulumi up` with `imageRef` set to that digest for this one update. Going through `pulumi up`
keeps Pulumi's state and AWS in agreement (a direct ECS update would leave the state describing
the newer image, and the next update would roll it forward by surprise), and applies the same
release rules as any release: the release check refuses an image older than the database (it lacks
migrations the database has applied, named in the refusal) or one that drops tasks whose messages
wait, unless `--force`; Beat stops before the new one starts; `pulumi up` fails if ECS's circuit
breaker rolls the web deployment back.

The setting is given for this update only (`pulumi up --config`), and the stack file is restored
afterwards: the next deploy from source (or promotion) replaces the rollback, as after `heroku
rollback`. `previous` is the image the web service ran before the current one, read from the web
task definition's earlier revisions (they stay registered).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.image.copy import image_exists
from infra.image.reference import ImageRef, ImageReferenceError
from infra.ops.stack import REPO_ROOT, DeployedStack, OpsError

PREVIOUS = "previous"
Runner = Callable[[Sequence[str]], int]  # runs a command in the repository root; returns its exit code
# ServiceDeploymentStatus values (botocore ECS model): a deployment still to finish, one ECS rolls back.
OPEN = ("PENDING", "IN_PROGRESS")
ROLLING_BACK = ("ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS")


@dataclass(frozen=True)
class OpenDeployment:
    """The web service's deployment that has not finished, as ECS describes it."""

    arn: str
    status: str  # one of OPEN or ROLLING_BACK
    stage: str  # its lifecycle stage, e.g. BAKE_TIME; "" when ECS names none

    @property
    def rolling_back(self) -> bool:
        return self.status in ROLLING_BACK

    def __str__(self) -> str:
        return f"{self.arn} ({self.status}{', ' + self.stage if self.stage else ''})"


def open_deployment(ecs: Any, stack: DeployedStack) -> OpenDeployment | None:
    """The newest web deployment that is open or being rolled back; None when every one finished."""
    listed = (
        ecs.list_service_deployments(
            cluster=stack.cluster_name, service=stack.web_service_name, status=[*OPEN, *ROLLING_BACK]
        ).get("serviceDeployments")
        or []
    )
    if not listed:
        return None
    newest = max(
        listed, key=lambda deployment: deployment.get("createdAt") or deployment.get("startedAt") or 0
    )
    arn = str(newest["serviceDeploymentArn"])
    described = ecs.describe_service_deployments(serviceDeploymentArns=[arn]).get("serviceDeployments") or [
        {}
    ]
    return OpenDeployment(arn, str(newest["status"]), str(described[0].get("lifecycleStage") or ""))


def stop_deployment(ecs: Any, deployment: OpenDeployment) -> None:
    """ECS rolls the deployment back to the revision that served before it."""
    ecs.stop_service_deployment(serviceDeploymentArn=deployment.arn, stopType="ROLLBACK")


@dataclass(frozen=True)
class Rollback:
    stack: DeployedStack
    current: ImageRef
    target: ImageRef

    def command(self, project: str, force: bool) -> list[str]:
        """The `pulumi up` that releases the target image for this one update."""
        settings = {"imageRef": str(self.target), "imageFromStack": ""}
        if force:
            settings["releaseForce"] = "true"
        configs = [
            part for key, value in settings.items() for part in ("--config", f"{project}:{key}={value}")
        ]
        return ["pulumi", "up", "--stack", self.stack.name, "--yes", "--non-interactive", *configs]


def plan_rollback(ecs: Any, ecr: Any, stack: DeployedStack, to: str) -> Rollback:
    """Which image to release, checked: it is in the stack's repository, kept, and not the current one."""
    if not stack.image_ref or not stack.repository_url:
        raise OpsError(f"stack {stack.name!r} lacks the imageRef or ecrRepositoryUrl output: update it first")
    current = ImageRef.parse(stack.image_ref)
    text = previous_image(ecs, stack, current) if to == PREVIOUS else to
    try:
        target = ImageRef.resolve(text, stack.repository_url)
    except ImageReferenceError as error:
        raise OpsError(f"--to: {error}") from None
    if not target.in_repository(stack.repository_url):
        raise OpsError(
            f"{target} is not in the stack's repository {stack.repository_url}: rollback runs images the "
            "stack keeps. To run an image from elsewhere, promote it: pulumi config set imageRef <ref>"
        )
    if target.digest == current.digest:
        raise OpsError(f"stack {stack.name!r} already runs {target.digest}")
    if not image_exists(ecr, target.repository, target.digest):
        raise OpsError(
            f"the repository {target.repository} no longer keeps {target.digest}; it keeps the "
            "ecrKeepImages most recent images"
        )
    return Rollback(stack, current, target)


def previous_image(ecs: Any, stack: DeployedStack, current: ImageRef) -> str:
    """The web container's image in the newest earlier revision that ran another image."""
    described = ecs.describe_task_definition(taskDefinition=stack.web_task_definition_arn)["taskDefinition"]
    family, revision = described["family"], int(described["revision"])
    for arn in _revisions_newest_first(ecs, family):
        if int(arn.rsplit(":", 1)[1]) >= revision:
            continue
        image = _web_image(ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"], stack)
        if image and ImageRef.parse(image).digest != current.digest:
            return image
    raise OpsError(
        f"no earlier revision of task definition family {family} runs another image than {current.digest}; "
        "give the digest: --to sha256:<digest>"
    )


def _revisions_newest_first(ecs: Any, family: str) -> list[str]:
    arns: list[str] = []
    for status in ("ACTIVE", "INACTIVE"):  # ephemeral stacks deregister old revisions
        paginator = ecs.get_paginator("list_task_definitions")
        for page in paginator.paginate(familyPrefix=family, status=status, sort="DESC"):
            arns += [
                arn for arn in page["taskDefinitionArns"] if arn.rsplit(":", 1)[0].endswith(f"/{family}")
            ]
    return sorted(set(arns), key=lambda arn: int(arn.rsplit(":", 1)[1]), reverse=True)


def _web_image(definition: dict[str, Any], stack: DeployedStack) -> str | None:
    for container in definition.get("containerDefinitions", []):
        if container.get("name") == stack.web_container_name:
            return str(container["image"])
    return None


def run_keeping_stack_file(command: Sequence[str], stack: str, run: Runner, root: Path = REPO_ROOT) -> int:
    """Runs `command`, then puts the stack file back as it was (`pulumi up --config` writes to it)."""
    stack_file = root / f"Pulumi.{stack.rsplit('/', 1)[-1]}.yaml"
    before = stack_file.read_bytes() if stack_file.exists() else None
    try:
        return run(command)
    finally:
        if before is None:
            stack_file.unlink(missing_ok=True)
        else:
            stack_file.write_bytes(before)


def run_in_repository(command: Sequence[str]) -> int:
    try:
        return subprocess.run(list(command), cwd=REPO_ROOT, stdin=subprocess.DEVNULL, check=False).returncode
    except FileNotFoundError:
        raise OpsError("the Pulumi CLI is not installed or not on PATH") from None
