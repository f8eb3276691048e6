"""Build once, promote by digest: references, the ECR-to-ECR copy, its provider, and the program.

The target repository is moto's ECR (it keeps layers per repository and checks uploaded parts);
the source answers BatchGetImage and GetDownloadUrlForLayer through botocore's Stubber, which
checks every request against the real ECR API model (moto has no layer downloads).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from infra.config.reader import StackConfigError
from infra.image.copy import CopyResult, Download, ImageCopyError, _parts, copy_image
from infra.image.provider import ImagePromotionProvider
from infra.image.reference import ImageRef, ImageReferenceError, digest_of, is_reference
from infra.stack import validate
from testkit.program import ProgramRun, bare_config, run_program

REGION = "eu-west-1"
SOURCE_REGISTRY = f"111111111111.dkr.ecr.{REGION}.amazonaws.com"
TARGET_REGISTRY = f"222222222222.dkr.ecr.{REGION}.amazonaws.com"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
TARGET_REPOSITORY = "djcelery-prod-repository"


def sha(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


class FakeImage:
    """An image as a registry holds it: blobs by digest and the manifest's exact bytes."""

    def __init__(self, layers: list[bytes]) -> None:
        self.config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
        self.blobs = {sha(blob): blob for blob in [self.config, *layers]}
        self.manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": DOCKER_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.docker.container.image.v1+json",
                    "digest": sha(self.config),
                    "size": len(self.config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                        "digest": sha(layer),
                        "size": len(layer),
                    }
                    for layer in layers
                ],
            }
        )
        self.digest = sha(self.manifest.encode())


class SourceRegistry:
    """The source repository's ECR API, scripted call by call."""

    def __init__(self, repository: str) -> None:
        self.repository = repository
        self.client = boto3.client("ecr", region_name=REGION)
        self.stubber = Stubber(self.client)
        self.downloads: list[str] = []

    def serves_manifest(self, digest: str, manifest: str, media_type: str) -> None:
        self.stubber.add_response(
            "batch_get_image",
            {
                "images": [
                    {
                        "imageId": {"imageDigest": digest},
                        "imageManifest": manifest,
                        "imageManifestMediaType": media_type,
                    }
                ],
                "failures": [],
            },
            self._batch_get_image_request(digest),
        )

    def lacks_image(self, digest: str) -> None:
        self.stubber.add_response(
            "batch_get_image",
            {
                "images": [],
                "failures": [
                    {
                        "imageId": {"imageDigest": digest},
                        "failureCode": "ImageNotFound",
                        "failureReason": "Requested image not found",
                    }
                ],
            },
            self._batch_get_image_request(digest),
        )

    def _batch_get_image_request(self, digest: str) -> dict[str, Any]:
        return {
            "repositoryName": self.repository,
            "imageIds": [{"imageDigest": digest}],
            "acceptedMediaTypes": list(_accepted()),
        }

    def copy_to_target(self, target_ecr: Any, digest: str, fetch: Download) -> CopyResult:
        """copy_image of this repository's image `digest` into the target stack's repository."""
        return copy_image(
            self.client,
            target_ecr,
            ImageRef(SOURCE_REGISTRY, self.repository, digest),
            f"{TARGET_REGISTRY}/{TARGET_REPOSITORY}",
            fetch,
        )

    def serves_blob(self, digest: str) -> None:
        self.stubber.add_response(
            "get_download_url_for_layer",
            {"downloadUrl": f"https://layers.example/{digest}", "layerDigest": digest},
            {"repositoryName": self.repository, "layerDigest": digest},
        )


def _accepted() -> tuple[str, ...]:
    from infra.image.copy import MANIFEST_MEDIA_TYPES

    return MANIFEST_MEDIA_TYPES


@pytest.fixture
def target_ecr() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("ecr", region_name=REGION)
        client.create_repository(repositoryName=TARGET_REPOSITORY, imageTagMutability="IMMUTABLE")
        yield client


def fetcher(image: FakeImage, chunk: int = 7) -> Any:
    def fetch(url: str) -> Iterator[bytes]:
        blob = image.blobs[url.rsplit("/", 1)[-1]]
        for start in range(0, len(blob), chunk):
            yield blob[start : start + chunk]

    return fetch


# --- references -----------------------------------------------------------------------------


def test_a_reference_names_registry_repository_and_digest() -> None:
    digest = "sha256:" + "a" * 64
    ref = ImageRef.parse(f"{SOURCE_REGISTRY}/djcelery-dev-repository@{digest}")
    assert (ref.registry, ref.repository, ref.digest, ref.region) == (
        SOURCE_REGISTRY,
        "djcelery-dev-repository",
        digest,
        REGION,
    )
    assert str(ref.moved_to(f"{TARGET_REGISTRY}/prod")) == f"{TARGET_REGISTRY}/prod@{digest}"
    assert ImageRef.resolve(digest, f"{TARGET_REGISTRY}/prod").in_repository(f"{TARGET_REGISTRY}/prod")
    assert digest_of(digest) == digest_of(str(ref)) == digest


@pytest.mark.parametrize(
    "text",
    ["app:latest", f"{SOURCE_REGISTRY}/repo:v1", f"{SOURCE_REGISTRY}/repo@sha256:abc", "sha256:" + "A" * 64],
)
def test_tags_and_short_digests_are_not_references(text: str) -> None:
    assert not is_reference(text)
    with pytest.raises(ImageReferenceError, match="not an image reference by digest"):
        ImageRef.parse(text)


# --- the copy -----------------------------------------------------------------------------------


def test_the_copy_uploads_every_blob_and_keeps_the_digest(target_ecr: Any) -> None:
    image = FakeImage([b"layer one " * 50, b"layer two " * 30])
    source = SourceRegistry("djcelery-dev-repository")
    source.serves_manifest(image.digest, image.manifest, DOCKER_MANIFEST)
    for digest in image.blobs:
        source.serves_blob(digest)

    with source.stubber:
        result = source.copy_to_target(target_ecr, image.digest, fetcher(image))
        source.stubber.assert_no_pending_responses()

    assert result.copied_blobs == 3
    assert str(result.image) == f"{TARGET_REGISTRY}/{TARGET_REPOSITORY}@{image.digest}"
    described = target_ecr.describe_images(
        repositoryName=TARGET_REPOSITORY, imageIds=[{"imageDigest": image.digest}]
    )["imageDetails"]
    assert [detail["imageDigest"] for detail in described] == [image.digest]
    available = target_ecr.batch_check_layer_availability(
        repositoryName=TARGET_REPOSITORY, layerDigests=list(image.blobs)
    )["layers"]
    assert {layer["layerDigest"] for layer in available} == set(image.blobs)


def test_an_image_already_in_the_target_is_not_copied_again(target_ecr: Any) -> None:
    image = FakeImage([b"only layer"])
    target_ecr.put_image(
        repositoryName=TARGET_REPOSITORY, imageManifest=image.manifest, imageDigest=image.digest
    )
    source = SourceRegistry("djcelery-dev-repository")  # no scripted answer: any call fails the test
    with source.stubber:
        result = source.copy_to_target(target_ecr, image.digest, fetcher(image))
    assert result.copied_blobs == 0


def test_blobs_the_target_has_are_not_downloaded(target_ecr: Any) -> None:
    base = b"shared base layer" * 10
    image = FakeImage([base, b"app layer"])
    upload = target_ecr.initiate_layer_upload(repositoryName=TARGET_REPOSITORY)["uploadId"]
    target_ecr.upload_layer_part(
        repositoryName=TARGET_REPOSITORY,
        uploadId=upload,
        partFirstByte=0,
        partLastByte=len(base) - 1,
        layerPartBlob=base,
    )
    target_ecr.complete_layer_upload(
        repositoryName=TARGET_REPOSITORY, uploadId=upload, layerDigests=[sha(base)]
    )
    source = SourceRegistry("djcelery-dev-repository")
    source.serves_manifest(image.digest, image.manifest, DOCKER_MANIFEST)
    for digest in image.blobs:
        if digest != sha(base):
            source.serves_blob(digest)
    with source.stubber:
        result = source.copy_to_target(target_ecr, image.digest, fetcher(image))
        source.stubber.assert_no_pending_responses()
    assert result.copied_blobs == 2


def test_an_index_brings_its_platform_manifests_first(target_ecr: Any) -> None:
    amd64, arm64 = FakeImage([b"amd64 layer"]), FakeImage([b"arm64 layer"])
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": DOCKER_MANIFEST, "digest": amd64.digest, "size": len(amd64.manifest)},
                {"mediaType": DOCKER_MANIFEST, "digest": arm64.digest, "size": len(arm64.manifest)},
            ],
        }
    )
    index_digest = sha(index.encode())
    source = SourceRegistry("djcelery-dev-repository")
    source.serves_manifest(index_digest, index, OCI_INDEX)
    blobs: dict[str, bytes] = {}
    for platform in (amd64, arm64):
        source.serves_manifest(platform.digest, platform.manifest, DOCKER_MANIFEST)
        for digest in platform.blobs:
            if digest not in blobs:
                source.serves_blob(digest)
            blobs[digest] = platform.blobs[digest]
    merged = FakeImage([])
    merged.blobs = blobs
    with source.stubber:
        source.copy_to_target(target_ecr, index_digest, fetcher(merged))
        source.stubber.assert_no_pending_responses()
    stored = {
        image["imageDigest"] for image in target_ecr.list_images(repositoryName=TARGET_REPOSITORY)["imageIds"]
    }
    assert stored == {index_digest, amd64.digest, arm64.digest}


def test_an_expired_source_image_is_named(target_ecr: Any) -> None:
    digest = "sha256:" + "b" * 64
    source = SourceRegistry("djcelery-dev-repository")
    source.lacks_image(digest)
    with source.stubber, pytest.raises(ImageCopyError, match=r"has no image sha256:b{64}.*lifecycle"):
        source.copy_to_target(target_ecr, digest, fetcher(FakeImage([])))


def test_a_corrupted_download_is_refused_before_the_manifest_is_put(target_ecr: Any) -> None:
    image = FakeImage([b"the real layer"])
    source = SourceRegistry("djcelery-dev-repository")
    source.serves_manifest(image.digest, image.manifest, DOCKER_MANIFEST)
    source.serves_blob(sha(image.config))
    with source.stubber, pytest.raises(ImageCopyError, match="another digest"):
        source.copy_to_target(target_ecr, image.digest, lambda _url: iter([b"tampered"]))
    assert target_ecr.list_images(repositoryName=TARGET_REPOSITORY)["imageIds"] == []


def test_parts_have_the_size_the_registry_asks_for() -> None:
    assert list(_parts([b"abc", b"defgh", b"i"], 4)) == [b"abcd", b"efgh", b"i"]


def test_the_provider_promotes_into_the_stack_repository(target_ecr: Any) -> None:
    image = FakeImage([b"layer"])
    source = SourceRegistry("djcelery-dev-repository")
    source.serves_manifest(image.digest, image.manifest, DOCKER_MANIFEST)
    for digest in image.blobs:
        source.serves_blob(digest)
    clients = {REGION: target_ecr}
    provider = ImagePromotionProvider(clients=lambda region: clients[region], fetch=fetcher(image))
    props = {
        "source": f"{SOURCE_REGISTRY}/djcelery-dev-repository@{image.digest}",
        "repository_url": f"{TARGET_REGISTRY}/{TARGET_REPOSITORY}",
        "region": REGION,
    }
    # The source's region is the target's: one client answers for both, scripted for the source calls.
    clients[REGION] = _Routed(source.client, target_ecr)
    with source.stubber:
        created = provider.create(props)
    assert created.outs["image_ref"] == f"{TARGET_REGISTRY}/{TARGET_REPOSITORY}@{image.digest}"
    assert created.outs["digest"] == image.digest
    assert provider.diff("id", created.outs, {**props}).changes is False
    assert provider.diff("id", created.outs, {**props, "source": "sha256:" + "c" * 64}).changes is True


class _Routed:
    """One client for two repositories: source calls go to the stub, target calls to moto."""

    SOURCE_CALLS = frozenset({"batch_get_image", "get_download_url_for_layer"})

    def __init__(self, source: Any, target: Any) -> None:
        self._source, self._target = source, target

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source if name in self.SOURCE_CALLS else self._target, name)


# --- configuration and the program --------------------------------------------------------------


def test_prod_builds_nothing_and_runs_the_image_dev_runs(prod_run: ProgramRun) -> None:
    assert prod_run.of_type("docker:index/image:Image") == []
    promotion = prod_run.one("pulumi-python:dynamic:Resource", "image-promotion")
    assert promotion.inputs["source"].startswith("123456789012.dkr.ecr.us-east-1.amazonaws.com/djcelery-dev")
    repository = prod_run.one("aws:ecr/repository:Repository")
    image_ref = prod_run.outputs["imageRef"]
    assert image_ref == f"{repository.state['repositoryUrl']}@{digest_of(promotion.inputs['source'])}"
    assert prod_run.outputs["release"]["image"] == {
        "ref": image_ref,
        "digest": digest_of(image_ref),
        "source": "stack organization/djcelery/dev",
        "tag": None,
    }


def test_dev_builds_its_image(dev_run: ProgramRun) -> None:
    assert len(dev_run.of_type("docker:index/image:Image")) == 1
    assert dev_run.outputs["release"]["image"]["source"] == "build"
    tag = dev_run.one("docker:index/image:Image").inputs["imageName"].rsplit(":", 1)[1]
    assert dev_run.outputs["release"]["image"]["tag"] == tag


def test_a_bare_digest_runs_an_image_the_stack_keeps() -> None:
    digest = "sha256:" + "d" * 64
    run = run_program("pr-7", {"ephemeral": True, "imageRef": digest})
    assert run.of_type("docker:index/image:Image") == []
    repository_url = run.one("aws:ecr/repository:Repository").state["repositoryUrl"]
    assert run.outputs["imageRef"] == f"{repository_url}@{digest}"
    web = run.one("aws:ecs/taskDefinition:TaskDefinition", "web")
    assert {container["image"] for container in json.loads(web.inputs["containerDefinitions"])} == {
        f"{repository_url}@{digest}"
    }


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"imageRef": "djcelery:latest"}, "imageRef"),
        ({"imageRef": "sha256:" + "e" * 64, "imageFromStack": "dev"}, "imageFromStack"),
        ({"imageFromStack": "a/b/c/d"}, "imageFromStack"),
    ],
)
def test_image_sources_are_refused_when_ambiguous_or_malformed(overrides: dict[str, str], key: str) -> None:
    with pytest.raises(StackConfigError) as refused:
        validate(bare_config("pr-1", {"ephemeral": True, **overrides}))
    assert key in refused.value.keys


def test_a_stale_stored_promotion_provider_is_replaced_without_copying() -> None:
    """destroy rebuilds the provider from the state's copy (pulumi/pulumi#6285): a provider-only
    difference is a change, and its update copies nothing (no ECR client is created)."""

    def no_ecr(region: str) -> Any:
        raise AssertionError(f"no ECR client may be created here (asked for {region})")

    provider = ImagePromotionProvider(clients=no_ecr)
    source = f"111111111111.dkr.ecr.{REGION}.amazonaws.com/dev@sha256:{'a' * 64}"
    state = {
        "source": source,
        "repository_url": f"222222222222.dkr.ecr.{REGION}.amazonaws.com/prod",
        "region": REGION,
        "image_ref": "kept",
        "copied_blobs": 3,
        "__provider": "stored-by-an-earlier-release",
    }
    news = {**state, "__provider": "current"}
    assert provider.diff("id", state, {**state}).changes is False
    assert provider.diff("id", state, news).changes is True
    assert provider.update("id", state, news).outs == {
        key: value for key, value in state.items() if key != "__provider"
    }


def test_named_accounts_may_pull_the_stacks_images_and_nothing_more() -> None:
    """Promotion into another account copies from this repository with BatchGetImage and
    GetDownloadUrlForLayer (copy.py); the ECR user guide's cross-account pull example grants those
    and BatchCheckLayerAvailability to the other account's root principal."""
    run = run_program("pr-792", {"ephemeral": True, "imagePullAccounts": ["210987654321"]})
    policy = run.one("aws:ecr/repositoryPolicy:RepositoryPolicy")
    assert policy.inputs["repository"] == run.one("aws:ecr/repository:Repository").state["name"]
    [statement] = json.loads(policy.inputs["policy"])["Statement"]
    assert statement["Principal"] == {"AWS": ["arn:aws:iam::210987654321:root"]}
    assert sorted(statement["Action"]) == [
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
    ]
    assert "Resource" not in statement, "a repository policy applies to its own repository"
    assert (
        run_program("pr-793", {"ephemeral": True}).of_type("aws:ecr/repositoryPolicy:RepositoryPolicy") == []
    )
