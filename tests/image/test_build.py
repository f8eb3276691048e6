"""The built image: exactly the locked packages; the image benchmark's builds within their targets."""

from __future__ import annotations

import pytest
from packaging.markers import Marker

from bench.image import CACHED_REBUILD_TARGET_SECONDS, SIZE_TARGET_MB, measure_builds
from dockerkit.engine import PrivateEngine
from dockerkit.lock import LOCK, parse_pins

pytestmark = pytest.mark.image


def test_the_image_holds_exactly_the_locked_packages(engine: PrivateEngine, app_image: str) -> None:
    def in_image(*command: str) -> str:
        return engine.run("run", "--rm", "--network=none", app_image, *command).stdout

    python = in_image("python", "-c", "import platform; print(platform.python_version())").strip()
    environment = {"python_full_version": python, "python_version": python.rsplit(".", 1)[0]}
    locked = {
        f"{pin.key}=={pin.version}"
        for pin in parse_pins(LOCK.read_text())
        if not pin.marker or Marker(pin.marker).evaluate(environment)
    }
    installed = {
        f"{pin.key}=={pin.version}" for pin in parse_pins(in_image("pip", "freeze", "--exclude-editable"))
    }

    assert installed == locked, f"only installed: {installed - locked}; only locked: {locked - installed}"


def test_the_image_benchmark_builds_within_the_targets(engine: PrivateEngine, base_image: str) -> None:
    """bench/image.py's builds, once each: a cached rebuild is fast, a code change rebuilds only the
    layers after the dependencies, and the image stays small."""
    results = measure_builds(engine, base_image, repeat=1)

    assert results["cached_rebuild_seconds"] <= CACHED_REBUILD_TARGET_SECONDS, results
    assert results["code_change_rebuild_seconds"] < results["cold_build_seconds"] / 2, (
        f"a code change rebuilt the dependency layer: {results}"
    )
    assert results["image_mb"] <= SIZE_TARGET_MB, results
