"""Record a release's state for the upgrade tests of the releases after it.

    .venv/bin/python -m testkit.engine.golden 0.4.0

Writes tests/infra/fixtures/release-<version>/: `urns-<stack>.json`, every resource URN the engine
gives the golden stacks' registrations (the stacks and config overrides of the previous golden
release, plus the preview base), and `providers.json`, one stored `__provider` of each dynamic
provider kind, as `pulumi up` stores it. Run it on the commit that is released; the tests then
hold every later release to these (tests/infra/engine/test_upgrades.py, test_stored_providers.py).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from testkit.engine.aliases import engine_urns
from testkit.engine.state import pickled_globals
from testkit.program import ProgramRun, run_program

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "infra" / "fixtures"
DYNAMIC_RESOURCE = "pulumi-python:dynamic:Resource"
# Stacks the preview kinds add to the golden set (long-lived: a base is upgraded in place).
NEW_STACKS: dict[str, Mapping[str, Any] | None] = {"preview-base": None}
# Config a stack's owner must change to deploy a release, by release and golden stack (the release
# notes say why): the golden stacks of every earlier release take these changes first.
REQUIRED_CONFIG_CHANGES: dict[str, dict[str, dict[str, object]]] = {
    # 0.4.0 refuses a stack whose maxima exceed its database's connections; pr-456's pools do.
    "0.4.0": {"pr-456": {"dbInstanceClass": "db.t4g.small"}},
}


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def changes_since(recorded: str, stack: str) -> dict[str, object]:
    """The config changes of every release after `recorded` (up to this code) for `stack`."""
    changes: dict[str, object] = {}
    for release in sorted(REQUIRED_CONFIG_CHANGES, key=version_key):
        if version_key(release) > version_key(recorded):
            changes.update(REQUIRED_CONFIG_CHANGES[release].get(stack, {}))
    return changes


def golden_stacks(recording: str) -> dict[str, Mapping[str, Any] | None]:
    """The stacks of the latest release recorded before `recording`, with the config changes since,
    and the new ones."""
    earlier = [
        path
        for path in FIXTURES.glob("release-*")
        if version_key(path.name.removeprefix("release-")) < version_key(recording)
    ]
    latest = max(earlier, key=lambda path: version_key(path.name.removeprefix("release-")))
    version = latest.name.removeprefix("release-")
    stacks: dict[str, Mapping[str, Any] | None] = {}
    for path in sorted(latest.glob("urns-*.json")):
        entry = json.loads(path.read_text())
        changes = changes_since(version, entry["stack"])
        stacks[entry["stack"]] = {**(entry["overrides"] or {}), **changes} if changes else entry["overrides"]
    return {**stacks, **NEW_STACKS}


def urns_file(stack: str, overrides: Mapping[str, Any] | None, run: ProgramRun) -> dict[str, Any]:
    return {"stack": stack, "overrides": overrides, "urns": sorted(engine_urns(run.resources).values())}


# The stacks whose stored providers are recorded (the destroy test replays them against these).
PROVIDER_STACKS = ("dev", "prod")


def stored_providers(runs: Mapping[str, ProgramRun]) -> dict[str, Any]:
    """The first resource of each provider kind (the globals its pickle names), by resource name."""
    providers: dict[str, Any] = {}
    kinds: set[tuple[str, ...]] = set()
    for stack in PROVIDER_STACKS:
        run = runs[stack]
        for resource in run.of_type(DYNAMIC_RESOURCE):
            stored = resource.inputs["__provider"]
            names = tuple(sorted(set(pickled_globals(stored))))
            if names not in kinds and resource.name not in providers:
                kinds.add(names)
                providers[resource.name] = {"provider": stored, "globals": list(names), "stack": stack}
    return providers


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("version", help="the release being recorded, e.g. 0.4.0")
    version = parser.parse_args(argv).version
    target = FIXTURES / f"release-{version}"
    target.mkdir(exist_ok=True)
    runs: dict[str, ProgramRun] = {}
    for stack, overrides in golden_stacks(version).items():
        runs[stack] = run_program(stack, overrides)
        text = json.dumps(urns_file(stack, overrides, runs[stack]), indent=1) + "\n"
        (target / f"urns-{stack}.json").write_text(text)
    (target / "providers.json").write_text(json.dumps(stored_providers(runs), indent=1) + "\n")
    print(f"wrote {target}: {', '.join(sorted(runs))} and {len(stored_providers(runs))} providers")


if __name__ == "__main__":
    main()
