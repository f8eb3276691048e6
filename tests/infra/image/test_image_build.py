"""The ECR repository and the image build: configurable inputs, immutable digest-named tags."""

import json
import re

import pytest

from infra.image.build_context import context_digest
from testkit.program import ROOT, ProgramRun, run_program
from tests.infra.conftest import OWN_PROJECT

REPOSITORY = "aws:ecr/repository:Repository"
IMAGE = "docker:index/image:Image"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"


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
    # BUILDKIT_INLINE_CACHE=1 writes the layer cache into the pushed image, so a later build may
    # name it in cacheFrom (pulumi-docker Image docs, "Docker image build using caching with AWS
    # Elastic Container Registry"; Docker docs, "Inline cache").
    assert image["build"] == {
        "context": context,
        "dockerfile": dockerfile,
        "platform": platform,
        "args": {"BUILDKIT_INLINE_CACHE": "1"},
    }
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


def test_a_context_built_before_runs_the_kept_image_and_pushes_nothing(dev_run: ProgramRun) -> None:
    """A `git revert` returns to a build context whose tag the repository already holds. ECR refuses
    to overwrite a tag in an IMMUTABLE repository ("IMMUTABLE ... will prevent them from being
    overwritten", botocore ecr `PutImageTagMutability`), so a second push of it would fail the
    update: the stack runs that image by digest instead (ECR's ListImages answers the tag)."""
    tag = dev_run.one(IMAGE).inputs["imageName"].rsplit(":", 1)[1]
    kept = "sha256:" + "b" * 64
    reverted = run_program("dev", ecr_images={tag: kept, "0123456789abcdef": "sha256:" + "c" * 64})
    assert reverted.of_type(IMAGE) == [], "nothing is built or pushed"
    repository_url = reverted.one(REPOSITORY).state["repositoryUrl"]
    assert reverted.outputs["imageRef"] == f"{repository_url}@{kept}"
    web = next(
        definition
        for definition in reverted.of_type(TASK_DEFINITION)
        if definition.name == "web-task-definition"
    )
    assert json.loads(web.inputs["containerDefinitions"])[0]["image"] == f"{repository_url}@{kept}"
    assert reverted.outputs["release"]["image"]["tag"] == tag, "the release record names the kept build"


def test_a_new_context_is_built_even_when_older_tags_are_kept(dev_run: ProgramRun) -> None:
    older = run_program("dev", ecr_images={"0123456789abcdef": "sha256:" + "c" * 64})
    assert len(older.of_type(IMAGE)) == 1


def test_a_preview_build_starts_from_its_base_image_layers(
    preview_base_run: ProgramRun, preview_run: ProgramRun
) -> None:
    """A preview's image differs from its base's in the app's code only: the build names the base
    image in cacheFrom, so BuildKit reuses its dependency layers (pulumi-docker Image docs,
    "Docker image build using caching with AWS Elastic Container Registry": cacheFrom.images of an
    image built with BUILDKIT_INLINE_CACHE=1) and only the layers from `COPY . .` on are built."""
    build = preview_run.one(IMAGE).inputs["build"]
    assert build.get("cacheFrom") == {"images": [preview_base_run.outputs["imageRef"]]}, (
        f"the preview's build must start from the base image's layers: {build}"
    )
    assert build["args"] == {"BUILDKIT_INLINE_CACHE": "1"}, build
    base_build = preview_base_run.one(IMAGE).inputs["build"]
    assert "cacheFrom" not in base_build, "the base has no image before its own"
