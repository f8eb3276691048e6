"""Image build settings of a stack."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from infra.config.reader import ConfigReader

ImagePlatform = Literal["linux/amd64", "linux/arm64"]
CpuArchitecture = Literal["X86_64", "ARM64"]
# Build platform -> the Fargate CPU architecture that runs it.
IMAGE_PLATFORMS: dict[ImagePlatform, CpuArchitecture] = {"linux/amd64": "X86_64", "linux/arm64": "ARM64"}


@dataclass(frozen=True)
class ImageConfig:
    context: str  # relative to the project root
    dockerfile: str  # relative to the project root
    platform: ImagePlatform
    keep_images: int  # the ECR lifecycle policy keeps this many

    @property
    def cpu_architecture(self) -> CpuArchitecture:
        return IMAGE_PLATFORMS[self.platform]

    @classmethod
    def read(cls, read: ConfigReader, project_root: Path | None) -> ImageConfig:
        """With `project_root`, the build paths (relative to it) must also exist."""
        config = cls(
            context=read.string("imageContext", r"\S+", "a path to the Docker build context"),
            dockerfile=read.string("imageDockerfile", r"\S+", "a path to the Dockerfile"),
            platform=read.choice("imagePlatform", tuple(IMAGE_PLATFORMS)),
            keep_images=read.integer("ecrKeepImages", 1, 1000),
        )
        if project_root is not None:
            if read.valid("imageContext") and not (project_root / config.context).is_dir():
                read.report("imageContext", config.context, f"a directory relative to {project_root}")
            if read.valid("imageDockerfile") and not (project_root / config.dockerfile).is_file():
                read.report("imageDockerfile", config.dockerfile, f"a file relative to {project_root}")
        return config
