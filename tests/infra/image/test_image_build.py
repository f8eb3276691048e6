"""The ECR repository and the image build: configurable inputs, immutable digest-named tags."""

import json
import re

import pytest

from infra.image.build_context import context_digest
from testkit.program import ROOT, ProgramRun
from tests.infra.conftest import OWN_PROJECT

REPOSITORY = "aws:ecr/repository:Repository"
IMAGE = "docker:index/image:Image"


@pytest.mark.parametrize(
    ("run_name", "protected"), [("dev_run", False), ("prod_run", True), ("ephemeral_run", False)]
)
def test_repository_scans_on_push_has_immutable_tags_and_is_protected_or_force_deleted(
    run_name: str, protected: bool, request
) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    repository = run.one(REPOSITORY)
    assert repository.inputs["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repository.inputs["imageTagMutability"] == "IMMUTABLE"
    # A protected repository stops `pulumi destroy` at preview; any other must not stop it at the end.
    assert repository.options["protect"] is protected
    assert repository.inputs["forceDelete"] is not protected
    assert run.outputs["ecrRepositoryUrl"] == repository.state["repositoryUrl"]


def test_lifecycle_policy_keeps_the_configured_number_of_images(dev_run: ProgramRun) -> None:
    policy = dev_run.one("aws:ecr/lifecyclePolicy:LifecyclePolicy")
    assert policy.inputs["repository"] == dev_run.one(REPOSITORY).state["name"]
    [rule] = json.loads(policy.inputs["policy"])["rules"]
    assert rule["selection"] == {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 10}
    assert rule["action"] == {"type": "expire"}


@pytest.mark.parametrize(
    ("run_name", "context", "dockerfile", "platform"),
    [
        ("dev_run", "app", "app/Dockerfile", "linux/amd64"),
        ("custom_run", OWN_PROJECT, f"{OWN_PROJECT}/Dockerfile", "linux/arm64"),
    ],
)
def test_image_is_built_from_the_configured_context_and_pushed_under_a_content_tag(
    run_name: str, context: str, dockerfile: str, platform: str, request
) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    image = run.one(IMAGE).inputs
    # Relative to the program directory, the Docker provider's working directory: an absolute path
    # would differ between two checkouts and make the provider rebuild an unchanged image.
    assert image["build"] == {"context": context, "dockerfile": dockerfile, "platform": platform}
    repository_url = run.one(REPOSITORY).state["repositoryUrl"]
    repository, tag = image["imageName"].rsplit(":", 1)
    assert repository == repository_url
    assert re.fullmatch(r"[0-9a-f]{16}", tag), f"the tag must be the build-input digest, got {tag!r}"
    assert image["registry"]["server"] == repository_url
    assert run.outputs["imageRef"] == run.one(IMAGE).state["repoDigest"]


def test_the_tag_is_the_digest_of_the_build_inputs(custom_run: ProgramRun) -> None:
    # The user's project fixture never changes while tests run, unlike app/.
    tag = custom_run.one(IMAGE).inputs["imageName"].rsplit(":", 1)[1]
    assert tag == context_digest(ROOT / OWN_PROJECT, ROOT / OWN_PROJECT / "Dockerfile", "linux/arm64")
