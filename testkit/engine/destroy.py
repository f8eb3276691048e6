"""`pulumi destroy`, replayed on a program's recorded graph with the rules Pulumi and AWS enforce.

- Pulumi checks `protect` while it plans (preview): a protected resource stops the whole destroy
  before anything is deleted (pulumi/pulumi `pkg/resource/deploy/step.go`).
- Otherwise the engine deletes a resource once every resource depending on it is gone, everything
  else in parallel. AWS checks its own blockers only at that resource's delete call: RDS and ALB
  deletion protection, an ECR repository that still holds images (without force delete), an S3
  bucket that still holds objects (without force destroy). A blocked delete fails, and what it
  depends on can then never be deleted; everything independent of it is deleted anyway (the worst
  case: the engine lets parallel deletes finish).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from infra import app_contract
from testkit.engine.graph import DependencyGraph
from testkit.program import ProgramRun, RecordedResource

RDS_INSTANCE = "aws:rds/instance:Instance"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
ECR_REPOSITORY = "aws:ecr/repository:Repository"
S3_BUCKET = "aws:s3/bucket:Bucket"
DOCKER_IMAGE = "docker:index/image:Image"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"


@dataclass
class DestroyOutcome:
    stopped_at_preview: list[str] = field(default_factory=list)  # protected resources, nothing deleted
    deleted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # resource -> the error AWS answers
    never_reached: list[str] = field(default_factory=list)  # waiting on a failed delete

    @property
    def clean(self) -> bool:
        return not (self.stopped_at_preview or self.failed or self.never_reached)


def replay_destroy(run: ProgramRun) -> DestroyOutcome:
    graph = DependencyGraph(run)
    resources = graph.custom_resources()
    protected = [_label(resource) for resource in resources if resource.options.get("protect")]
    if protected:
        return DestroyOutcome(stopped_at_preview=sorted(protected))
    holding = _resources_holding_data(graph)
    dependents = graph.dependents()
    outcome = DestroyOutcome()
    remaining = {resource.urn: resource for resource in resources}
    gone: set[str] = set()
    while True:
        ready = [r for urn, r in remaining.items() if dependents.get(urn, set()) <= gone]
        if not ready:
            break
        for resource in ready:
            del remaining[resource.urn]
            error = aws_delete_error(resource, holding)
            if error:
                outcome.failed[_label(resource)] = error
            else:
                gone.add(resource.urn)
                outcome.deleted.append(_label(resource))
    outcome.never_reached = sorted(_label(resource) for resource in remaining.values())
    return outcome


def aws_delete_error(resource: RecordedResource, holding_data: set[str]) -> str | None:
    """What AWS answers to this resource's delete call, or None when it deletes it."""
    check = _BLOCKERS.get(resource.type)
    return check(resource, resource.urn in holding_data) if check else None


def _rds(resource: RecordedResource, _: bool) -> str | None:
    if resource.inputs.get("deletionProtection"):
        return "InvalidParameterCombination: Cannot delete protected DB Instance"
    return None


def _load_balancer(resource: RecordedResource, _: bool) -> str | None:
    if resource.inputs.get("enableDeletionProtection"):
        return "OperationNotPermitted: Load balancer is protected from deletion"
    return None


def _repository(resource: RecordedResource, holds_images: bool) -> str | None:
    if holds_images and not resource.inputs.get("forceDelete"):
        return "RepositoryNotEmptyException: the repository still holds images"
    return None


def _bucket(resource: RecordedResource, holds_objects: bool) -> str | None:
    if holds_objects and not resource.inputs.get("forceDestroy"):
        return "BucketNotEmpty: The bucket you tried to delete is not empty"
    return None


_BLOCKERS: dict[str, Callable[[RecordedResource, bool], str | None]] = {
    RDS_INSTANCE: _rds,
    LOAD_BALANCER: _load_balancer,
    ECR_REPOSITORY: _repository,
    S3_BUCKET: _bucket,
}


def _resources_holding_data(graph: DependencyGraph) -> set[str]:
    """Repositories the program pushes images to and buckets something writes objects into (the
    ALB's access logs, the app's media files), as they are after one `pulumi up` and some traffic."""
    holding: set[str] = set()
    for repository in graph.run.of_type(ECR_REPOSITORY):
        url = str(repository.state.get("repositoryUrl"))
        if any(
            str(image.inputs.get("imageName", "")).startswith(f"{url}:")
            for image in graph.run.of_type(DOCKER_IMAGE)
        ):
            holding.add(repository.urn)
    logged_to = {
        str((balancer.inputs.get("accessLogs") or {}).get("bucket"))
        for balancer in graph.run.of_type(LOAD_BALANCER)
        if (balancer.inputs.get("accessLogs") or {}).get("enabled")
    }
    holding |= {bucket.urn for bucket in graph.with_identity(S3_BUCKET, logged_to | _media_buckets(graph))}
    return holding


def _media_buckets(graph: DependencyGraph) -> set[str]:
    """The buckets task definitions name as MEDIA_BUCKET: the app stores uploads there."""
    named: set[str] = set()
    for task_definition in graph.run.of_type(TASK_DEFINITION):
        definitions = task_definition.inputs.get("containerDefinitions") or "[]"
        for container in json.loads(definitions) if isinstance(definitions, str) else definitions:
            named |= {
                str(variable["value"])
                for variable in container.get("environment") or []
                if variable.get("name") == app_contract.MEDIA_BUCKET
            }
    return named


def _label(resource: RecordedResource) -> str:
    return f"{resource.type.rsplit(':', 1)[-1]} {resource.name}"


@dataclass
class PreviewDestroy:
    outcome: DestroyOutcome
    # Base resources the preview's destroy would delete (same type and physical name, or ARN).
    base_deleted: list[str]

    def deleted_before(self, first: str, then: str) -> bool:
        """`first` is gone before `then` is deleted (an earlier wave: `then` waits on it)."""
        deleted = self.outcome.deleted
        return first in deleted and then in deleted and deleted.index(first) < deleted.index(then)


def replay_preview_destroy(preview: ProgramRun, base: ProgramRun) -> PreviewDestroy:
    """`pulumi destroy` of a thin preview next to its base's run. The preview reads the base through
    a StackReference and an ECR read (`Resource.get`), which the engine never deletes; what the
    preview owns (its rule on the base's listener, its services on the base's cluster) goes."""
    outcome = replay_destroy(preview)
    deleted = set(outcome.deleted)

    def identities(resource: RecordedResource) -> set[tuple[str, str]]:
        if resource.type.startswith("pulumi:providers:"):  # a provider is no cloud resource
            return set()
        # pulumi-docker's native provider deletes nothing (provider/provider.go, Delete returns at
        # once): the pushed image stays in the registry, where the base's own build may share its tag.
        if resource.type == "docker:index/image:Image":
            return set()
        return {
            (kind, str(value))
            for kind, value in (("name", resource.state.get("name")), ("arn", resource.state.get("arn")))
            if value
        }

    owned = {
        identity
        for resource in preview.resources
        if _label(resource) in deleted
        for identity in {(resource.type, *pair) for pair in identities(resource)}
    }
    touched = [
        _label(resource)
        for resource in base.resources
        if {(resource.type, *pair) for pair in identities(resource)} & owned
    ]
    return PreviewDestroy(outcome, sorted(touched))
