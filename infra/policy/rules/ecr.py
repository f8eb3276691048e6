"""ECR: the image repository (Security Hub ECR controls)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from pulumi_policy import PolicyResource

from .shared import ECR_LIFECYCLE_POLICY, ECR_REPOSITORY, Props, Rule, of_type, resource_rule, stack_rule


def _scan_on_push(repository: Props) -> Iterator[str]:
    if (repository.get("imageScanningConfiguration") or {}).get("scanOnPush") is not True:
        yield "imageScanningConfiguration.scanOnPush must be true"


def _immutable_tags(repository: Props) -> Iterator[str]:
    if repository.get("imageTagMutability") != "IMMUTABLE":
        yield f"imageTagMutability must be IMMUTABLE, not {repository.get('imageTagMutability')!r}"


def _lifecycle_policy(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    governed = {policy.props.get("repository") for policy in of_type(resources, ECR_LIFECYCLE_POLICY)}
    for repository in of_type(resources, ECR_REPOSITORY):
        if repository.props.get("name") not in governed:
            yield repository.urn, "the repository needs an aws.ecr.LifecyclePolicy"


RULES: tuple[Rule, ...] = (
    resource_rule("ecr-scan-on-push", "ECR scans images on push", ["ECR.1"], [ECR_REPOSITORY], _scan_on_push),
    resource_rule(
        "ecr-immutable-tags", "ECR image tags are immutable", ["ECR.2"], [ECR_REPOSITORY], _immutable_tags
    ),
    stack_rule(
        "ecr-lifecycle-policy", "ECR repositories have a lifecycle policy", ["ECR.3"], _lifecycle_policy
    ),
)
