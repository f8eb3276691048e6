"""Upgrading a deployed stack to this release: the engine finds every resource it already has.

The golden files hold every resource URN of the test stacks as each earlier release declared them
(`python -m testkit.engine.golden <version>` records a release). The
engine matches this release's registrations with them by URN, then by alias
(testkit/engine/aliases.py, the engine's own rule): an old URN that nothing claims is deleted,
after the new resource was created. For a service, a log group or a task family with a fixed
name, that create fails ("already exists"); for a scalable target, the delete deregisters what
the create registered. A release that moves resources between components must alias them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testkit.engine.aliases import match_state
from testkit.engine.golden import changes_since
from testkit.program import run_program

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# Resources a release removes on purpose (`<type>::<name>`), by the release whose state holds them,
# and why the delete is harmless.
RETIRED: dict[str, dict[str, str]] = {
    "0.3.0": {
        "djcelery:index:AppServices::services": (
            "a component (nothing in AWS): 0.4.0 moved its services, aliased, to WebService, one "
            "WorkerPool per pool and Scheduler"
        ),
        **dict.fromkeys(
            (f"aws:lb/listenerRule:ListenerRule::web-lb-admin-deny-{index}" for index in (1, 2)),
            "0.3.0's 404 rules for percent-encoded admin paths, which ELB refuses; the firewall and the "
            "app close those paths now",
        ),
    },
}


def retired(release: str, urn: str) -> bool:
    return "::".join(urn.split("::")[2:]).rsplit("$", 1)[-1] in RETIRED.get(release, {})


def golden_stacks() -> list[Path]:
    return sorted(FIXTURES.glob("release-*/urns-*.json"))


def golden_id(path: Path) -> str:
    return f"{path.parent.name.removeprefix('release-')}-{path.stem.removeprefix('urns-')}"


@pytest.mark.parametrize("golden", golden_stacks(), ids=golden_id)
def test_every_resource_of_a_previous_release_is_found_again(golden: Path) -> None:
    release = golden.parent.name.removeprefix("release-")
    recorded = json.loads(golden.read_text())
    overrides = {**(recorded["overrides"] or {}), **changes_since(release, recorded["stack"])}
    run = run_program(recorded["stack"], overrides)
    matching = match_state(run.resources, recorded["urns"])
    assert matching.duplicates == [], f"the engine refuses these aliases: {matching.duplicates}"
    lost = [urn for urn in matching.unclaimed(recorded["urns"]) if not retired(release, urn)]
    assert lost == [], (
        f"{len(lost)} resources of a stack deployed with release {release} would be deleted (and created "
        f"again under a new URN) by `pulumi up`: alias them where they moved, or retire them: {lost}"
    )
