"""Copy one image, by digest, from an ECR repository into another: promotion without a rebuild.

ECR keeps layers per repository, so a manifest can only be put into a repository that already has
its blobs. The copy reads the manifest with BatchGetImage, and for each blob the target lacks
(BatchCheckLayerAvailability) downloads it from the URL GetDownloadUrlForLayer gives and uploads it
in parts (InitiateLayerUpload, UploadLayerPart, CompleteLayerUpload); an image index (multi-platform,
or with attestations) brings its child manifests first. The manifest is then put with its exact
bytes, so the image keeps its digest: what ran in the source stack is what runs in the target.

Plain functions over two boto3 ECR clients (source and target may be different regions or
accounts) and a download function, so tests can script every answer.
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from infra.image.reference import ImageRef

# Media types BatchGetImage may answer with; the copy keeps whichever the image was pushed as.
MANIFEST_MEDIA_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)
INDEX_MEDIA_TYPES = frozenset(MANIFEST_MEDIA_TYPES[2:])
DOWNLOAD_CHUNK_BYTES = 1024 * 1024
DOWNLOAD_TIMEOUT_SECONDS = 300

Download = Callable[[str], Iterable[bytes]]


class ImageCopyError(Exception):
    """The image could not be copied or found; the message says which and why."""


@dataclass(frozen=True)
class CopyResult:
    image: ImageRef  # the image in the target repository (same digest)
    copied_blobs: int  # blobs uploaded; 0 when the target had the image already


def download(url: str) -> Iterator[bytes]:
    """Streams a presigned layer URL (HTTPS, from ECR) in chunks."""
    if not url.startswith("https://"):
        raise ImageCopyError(f"refusing to download a layer from a non-HTTPS URL: {url}")
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:  # noqa: S310
        while chunk := response.read(DOWNLOAD_CHUNK_BYTES):
            yield chunk


def image_exists(ecr: Any, repository: str, digest: str) -> bool:
    try:
        ecr.describe_images(repositoryName=repository, imageIds=[{"imageDigest": digest}])
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ImageNotFoundException":
            return False
        raise
    return True


def copy_image(
    source_ecr: Any, target_ecr: Any, source: ImageRef, target_repository_url: str, fetch: Download = download
) -> CopyResult:
    """Makes `source` available in the target repository under the same digest."""
    target = source.moved_to(target_repository_url)
    if image_exists(target_ecr, target.repository, target.digest):
        return CopyResult(target, 0)
    copier = _Copier(source_ecr, target_ecr, source.repository, target.repository, fetch)
    copier.copy_manifest(source.digest)
    return CopyResult(target, copier.copied_blobs)


class _Copier:
    def __init__(self, source_ecr: Any, target_ecr: Any, source: str, target: str, fetch: Download) -> None:
        self._source_ecr, self._target_ecr = source_ecr, target_ecr
        self._source, self._target = source, target
        self._fetch = fetch
        self.copied_blobs = 0

    def copy_manifest(self, digest: str) -> None:
        manifest_text, media_type = self._get_manifest(digest)
        manifest = json.loads(manifest_text)
        if media_type in INDEX_MEDIA_TYPES:
            for child in manifest.get("manifests", []):
                self.copy_manifest(child["digest"])
        else:
            blobs = [manifest["config"]["digest"], *(layer["digest"] for layer in manifest.get("layers", []))]
            for blob in self._missing_blobs(blobs):
                self._copy_blob(blob)
        self._put_manifest(manifest_text, media_type, digest)

    def _get_manifest(self, digest: str) -> tuple[str, str]:
        response = self._source_ecr.batch_get_image(
            repositoryName=self._source,
            imageIds=[{"imageDigest": digest}],
            acceptedMediaTypes=list(MANIFEST_MEDIA_TYPES),
        )
        images = response.get("images") or []
        if not images:
            reasons = "; ".join(
                f"{failure.get('failureCode')}: {failure.get('failureReason')}"
                for failure in response.get("failures", [])
            )
            raise ImageCopyError(
                f"the repository {self._source} has no image {digest} ({reasons or 'no reason given'}); "
                "it may have expired under the repository's lifecycle policy"
            )
        image = images[0]
        text = str(image["imageManifest"])
        media_type = str(image.get("imageManifestMediaType") or json.loads(text).get("mediaType", ""))
        return text, media_type

    def _missing_blobs(self, digests: list[str]) -> list[str]:
        unique = list(dict.fromkeys(digests))
        response = self._target_ecr.batch_check_layer_availability(
            repositoryName=self._target, layerDigests=unique
        )
        available = {
            layer["layerDigest"]
            for layer in response.get("layers", [])
            if layer.get("layerAvailability") == "AVAILABLE"
        }
        return [digest for digest in unique if digest not in available]

    def _copy_blob(self, digest: str) -> None:
        url = self._source_ecr.get_download_url_for_layer(repositoryName=self._source, layerDigest=digest)[
            "downloadUrl"
        ]
        upload = self._target_ecr.initiate_layer_upload(repositoryName=self._target)
        upload_id, part_size = upload["uploadId"], int(upload.get("partSize") or DOWNLOAD_CHUNK_BYTES)
        sha256, first_byte = hashlib.sha256(), 0
        for part in _parts(self._fetch(url), part_size):
            sha256.update(part)
            self._target_ecr.upload_layer_part(
                repositoryName=self._target,
                uploadId=upload_id,
                partFirstByte=first_byte,
                partLastByte=first_byte + len(part) - 1,
                layerPartBlob=part,
            )
            first_byte += len(part)
        if f"sha256:{sha256.hexdigest()}" != digest:
            raise ImageCopyError(f"the blob downloaded for {digest} has another digest; nothing was put")
        self._target_ecr.complete_layer_upload(
            repositoryName=self._target, uploadId=upload_id, layerDigests=[digest]
        )
        self.copied_blobs += 1

    def _put_manifest(self, manifest_text: str, media_type: str, digest: str) -> None:
        try:
            self._target_ecr.put_image(
                repositoryName=self._target,
                imageManifest=manifest_text,
                imageManifestMediaType=media_type,
                imageDigest=digest,
            )
        except ClientError as error:
            # Another run (or a child of two indexes) put it first: the digest is what counts.
            if error.response.get("Error", {}).get("Code") != "ImageAlreadyExistsException":
                raise


def _parts(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Re-cuts a stream of chunks into parts of `size` bytes (the last one shorter)."""
    buffer = bytearray()
    for chunk in chunks:
        buffer.extend(chunk)
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)
