"""Image benchmark: how big the app image is and how long it takes to build.

A private Docker engine (dockerkit) builds app/Dockerfile on a Python base made from the Debian
archive, since no container registry is reachable here:
- base: debootstrap of Debian bookworm with Python 3.11, imported as an image (once per run);
- cold build: nothing cached, every locked package downloaded from PyPI;
- cached rebuild: the same context again, every layer from the cache;
- code change: one app module changed in a copy of the context, so only the layers from
  `COPY . .` on are rebuilt while the dependency layer stays cached;
- size: the image as `docker images` shows it, uncompressed, base included.

Needs root, Debian's docker.io and debootstrap, and the Debian archive and PyPI.

    .venv/bin/python -m bench.image [--smoke] [--repeat N]
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.report import argument_parser, describe_machine, machine_facts, table, write_results
from dockerkit.app_image import APP_CONTEXT, build_app_image, image_size_bytes
from dockerkit.debian_base import make_debian_base
from dockerkit.engine import PrivateEngine, private_engine
from dockerkit.prerequisites import missing_prerequisites

SIZE_TARGET_MB = 250
CACHED_REBUILD_TARGET_SECONDS = 30
REPEATS = 3
# The module a code change touches: imported by every role, so the change is a real one.
CHANGED_MODULE = Path("core") / "heartbeat.py"


def timed_builds(
    engine: PrivateEngine, base: str, tag: str, context: Path, repeat: int, change: bool
) -> list[float]:
    """Seconds of `repeat` builds of `context`, each after appending a comment to CHANGED_MODULE
    if `change`."""
    seconds = []
    for run in range(repeat):
        if change:
            with (context / CHANGED_MODULE).open("a") as module:
                module.write(f"# benchmark change {run}\n")
        seconds.append(build_app_image(engine, base, tag=tag, context=context).seconds)
    return seconds


def measure_builds(engine: PrivateEngine, base: str, repeat: int) -> dict[str, Any]:
    """Cold build, cached rebuilds and rebuilds after a code change of a copy of the app context."""
    with tempfile.TemporaryDirectory(prefix="bench-image-") as directory:
        context = Path(directory) / "app"
        shutil.copytree(APP_CONTEXT, context)
        tag = "djcelery-app:bench"
        cold = build_app_image(engine, base, tag=tag, context=context, no_cache=True)
        cached = timed_builds(engine, base, tag, context, repeat, change=False)
        changed = timed_builds(engine, base, tag, context, repeat, change=True)
    return {
        "storage_driver": engine.storage_driver,
        "base_mb": image_size_bytes(engine, base) / 1e6,
        "cold_build_seconds": cold.seconds,
        "cached_rebuild_seconds": statistics.median(cached),
        "code_change_rebuild_seconds": statistics.median(changed),
        "image_mb": image_size_bytes(engine, tag) / 1e6,
        "repeats": repeat,
    }


def measure(repeat: int) -> dict[str, Any]:
    with private_engine() as engine:
        started = time.monotonic()
        base = make_debian_base(engine)
        base_seconds = time.monotonic() - started
        return {"base_seconds": base_seconds, **measure_builds(engine, base, repeat)}


def report(results: dict[str, Any]) -> None:
    rows = [
        ("base image from the Debian archive", results["base_seconds"], f"{results['base_mb']:.1f} MB", ""),
        ("cold build (no cache)", results["cold_build_seconds"], "", ""),
        (
            "cached rebuild (median)",
            results["cached_rebuild_seconds"],
            "",
            f"<= {CACHED_REBUILD_TARGET_SECONDS} s",
        ),
        ("rebuild after a code change (median)", results["code_change_rebuild_seconds"], "", ""),
        ("app image", None, f"{results['image_mb']:.1f} MB", f"<= {SIZE_TARGET_MB} MB"),
    ]
    print(table(["step", "seconds", "size", "target"], rows))
    met = (
        results["image_mb"] <= SIZE_TARGET_MB
        and results["cached_rebuild_seconds"] <= CACHED_REBUILD_TARGET_SECONDS
    )
    print(
        f"\ntargets {'met' if met else 'NOT met'} (storage driver {results['storage_driver']}, "
        f"{results['repeats']} repeat(s) per rebuild)"
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    parser = argument_parser(__doc__)
    parser.add_argument("--smoke", action="store_true", help="one build of each kind instead of several")
    parser.add_argument("--repeat", type=int, default=REPEATS, help="builds per rebuild kind (median)")
    args = parser.parse_args(argv)
    facts = machine_facts()
    print(f"App image size and build time | {describe_machine(facts)}")
    reasons = missing_prerequisites()
    if reasons:
        print("skipped: " + "; ".join(reasons))
        return None
    results = {"machine": facts, **measure(1 if args.smoke else args.repeat)}
    report(results)
    write_results("image-smoke" if args.smoke else "image", results, args.results_dir)
    return results


if __name__ == "__main__":
    main()
