"""Image build settings of a stack."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from infra.config.reader import ConfigReader
from infra.image.reference import ALLOWED as IMAGE_REF_ALLOWED
from infra.image.reference import is_reference

ImagePlatform = Literal["linux/amd64", "linux/arm64"]
CpuArchitecture = Literal["X86_64", "ARM64"]
# Build platform -> the Fargate CPU architecture that runs it.
IMAGE_PLATFORMS: dict[ImagePlatform, CpuArchitecture] = {"linux/amd64": "X86_64", "linux/arm64": "ARM64"}
# A stack name as the backend knows it: `dev`, or fully qualified `organization/djcelery/dev`.
STACK_NAME_PATTERN = r"(?:[A-Za-z0-9_.-]+/){0,2}[A-Za-z0-9_.-]+"
ACCOUNT_ID_PATTERN = re.compile(r"\d{12}")
MAX_PULL_ACCOUNTS = 20


@dataclass(frozen=True)
class ImageConfig:
    context: str  # relative to the project root
    dockerfile: str  # relative to the project root
    platform: ImagePlatform
    keep_images: int  # the ECR lifecycle policy keeps this many
    # Run this image (by digest) instead of building one: a promotion or a rollback. "" builds.
    ref: str = ""
    # Run the image another stack runs (its `imageRef` output), copied into this stack's repository.
    from_stack: str = ""
    # Other accounts whose stacks may pull (promote) this stack's images.
    pull_accounts: tuple[str, ...] = ()

    @property
    def cpu_architecture(self) -> CpuArchitecture:
        return IMAGE_PLATFORMS[self.platform]

    @property
    def builds(self) -> bool:
        """The stack builds its image from the context; otherwise it promotes one built elsewhere."""
        return not (self.ref or self.from_stack)

    @classmethod
    def read(cls, read: ConfigReader, project_root: Path | None) -> ImageConfig:
        """With `project_root`, the build paths (relative to it) must also exist."""
        config = cls(
            context=read.string("imageContext", r"\S+", "a path to the Docker build context"),
            dockerfile=read.string("imageDockerfile", r"\S+", "a path to the Dockerfile"),
            platform=read.choice("imagePlatform", tuple(IMAGE_PLATFORMS)),
            keep_images=read.integer("ecrKeepImages", 1, 1000),
            ref=read.string("imageRef", r"|\S+", IMAGE_REF_ALLOWED),
            from_stack=read.string("imageFromStack", f"|{STACK_NAME_PATTERN}", "a stack name, e.g. dev"),
            pull_accounts=_read_accounts(read, "imagePullAccounts"),
        )
        config._check_source(read)
        if project_root is not None:
            if read.valid("imageContext") and not (project_root / config.context).is_dir():
                read.report("imageContext", config.context, f"a directory relative to {project_root}")
            if read.valid("imageDockerfile") and not (project_root / config.dockerfile).is_file():
                read.report("imageDockerfile", config.dockerfile, f"a file relative to {project_root}")
        return config

    def _check_source(self, read: ConfigReader) -> None:
        if self.ref and not is_reference(self.ref):
            read.report("imageRef", self.ref, IMAGE_REF_ALLOWED)
        if self.ref and self.from_stack and read.valid("imageRef", "imageFromStack"):
            read.report("imageFromStack", self.from_stack, "empty when imageRef is set (one image source)")


def _read_accounts(read: ConfigReader, key: str) -> tuple[str, ...]:
    value = read.json_value(key)
    if (
        not isinstance(value, list)
        or len(value) > MAX_PULL_ACCOUNTS
        or not all(isinstance(account, str) and ACCOUNT_ID_PATTERN.fullmatch(account) for account in value)
    ):
        read.report(
            key,
            value,
            f'a list of at most {MAX_PULL_ACCOUNTS} 12-digit AWS account ids, e.g. ["123456789012"]',
        )
        return ()
    return tuple(dict.fromkeys(value))
