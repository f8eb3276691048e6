"""Image references by digest: `<registry>/<repository>@sha256:<64 hex>`, and where they live.

A release runs an image by digest, never by tag, so the same bytes run wherever the digest goes.
An ECR registry host names its account and region (`123456789012.dkr.ecr.eu-west-1.amazonaws.com`),
which says which ECR API answers for a reference and whether it is already in a stack's own
repository.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DIGEST_PATTERN = r"sha256:[0-9a-f]{64}"
_DIGEST = re.compile(DIGEST_PATTERN)
_REFERENCE = re.compile(rf"(?P<repository_url>[^@\s]+/[^@\s]+)@(?P<digest>{DIGEST_PATTERN})")
_ECR_HOST = re.compile(r"(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?")
ALLOWED = "a digest sha256:<64 hex> of the stack's own repository, or <registry>/<repository>@sha256:<64 hex>"


class ImageReferenceError(ValueError):
    """Not an image reference by digest; the message says what is allowed."""


@dataclass(frozen=True)
class ImageRef:
    registry: str  # host, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com
    repository: str  # e.g. djcelery-dev-repository-1a2b3c
    digest: str  # sha256:<64 hex>

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        match = _REFERENCE.fullmatch(text.strip())
        if not match:
            raise ImageReferenceError(f"{text!r} is not an image reference by digest: {ALLOWED}")
        registry, _, repository = match["repository_url"].partition("/")
        return cls(registry, repository, match["digest"])

    @classmethod
    def resolve(cls, text: str, own_repository_url: str) -> ImageRef:
        """A full reference, or a bare digest taken to be in `own_repository_url`."""
        if _DIGEST.fullmatch(text.strip()):
            return cls.parse(f"{own_repository_url}@{text.strip()}")
        return cls.parse(text)

    def __str__(self) -> str:
        return f"{self.repository_url}@{self.digest}"

    @property
    def repository_url(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def region(self) -> str | None:
        """The region of an ECR registry; None for another registry."""
        return ecr_region(self.registry)

    def in_repository(self, repository_url: str) -> bool:
        return self.repository_url == repository_url

    def moved_to(self, repository_url: str) -> ImageRef:
        """The same image (same digest) in another repository."""
        registry, _, repository = repository_url.partition("/")
        return ImageRef(registry, repository, self.digest)


def ecr_region(registry: str) -> str | None:
    match = _ECR_HOST.fullmatch(registry)
    return match["region"] if match else None


def is_reference(text: str) -> bool:
    """A full reference or a bare digest (what the `imageRef` setting accepts)."""
    text = text.strip()
    return bool(_DIGEST.fullmatch(text) or _REFERENCE.fullmatch(text))


def digest_of(text: str) -> str:
    """The digest of a full reference or of a bare digest."""
    text = text.strip()
    if _DIGEST.fullmatch(text):
        return text
    return ImageRef.parse(text).digest
