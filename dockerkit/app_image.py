"""Build the app image (app/Dockerfile) on a private engine, and measure it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from dockerkit.engine import PrivateEngine

REPO_ROOT = Path(__file__).resolve().parents[1]
APP_CONTEXT = REPO_ROOT / "app"
APP_TAG = "djcelery-app:local"
# Resolving and downloading every locked package from PyPI dominates a cold build.
BUILD_TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class Build:
    tag: str
    seconds: float


def build_app_image(
    engine: PrivateEngine,
    base_image: str,
    *,
    tag: str = APP_TAG,
    context: Path = APP_CONTEXT,
    no_cache: bool = False,
) -> Build:
    """`docker build` of `context` (its Dockerfile) on `base_image`; host network, to reach PyPI."""
    arguments = ["build", "--network=host", "--progress=plain", f"--build-arg=BASE_IMAGE={base_image}"]
    if no_cache:
        arguments.append("--no-cache")
    started = time.monotonic()
    engine.run(*arguments, f"--tag={tag}", str(context), timeout=BUILD_TIMEOUT_SECONDS)
    return Build(tag=tag, seconds=time.monotonic() - started)


def image_size_bytes(engine: PrivateEngine, tag: str) -> int:
    """The image's uncompressed size, as `docker images` shows it (all layers, base included)."""
    return int(engine.run("image", "inspect", "--format={{.Size}}", tag).stdout)
