"""Providers stored by earlier releases: this release's code loads them, and replaces them.

`destroy`, `refresh` and `read` rebuild a dynamic provider from the `__provider` stored in the
state, without running the program ("by design as we don't read/run the program during destroy",
pulumi/pulumi#6285). The golden files hold what each earlier release stored. If a name they refer to moves
or is renamed, these tests fail: keep the old name importable (a compatibility shim) for as long as
a state may hold it, and a provider-only difference replaces the stored copy at the next `up`.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import dill
import pytest

from infra.release.provider import MigrationProvider
from testkit.engine.processes import DynamicProviderProcess, Project, clean_environment
from testkit.engine.state import pickled_globals, stored_by_value
from testkit.program import ProgramRun

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures"
RELEASES = sorted(GOLDEN.glob("release-*/providers.json"))
DYNAMIC_RESOURCE = "pulumi-python:dynamic:Resource"


def stored_providers() -> list[tuple[str, str, str]]:
    """(release, resource name, stored __provider) for every golden release."""
    return [
        (path.parent.name, name, entry["provider"])
        for path in RELEASES
        for name, entry in json.loads(path.read_text()).items()
    ]


@pytest.mark.parametrize(("release", "name", "stored"), stored_providers(), ids=lambda value: str(value)[:40])
def test_a_released_provider_loads_in_a_fresh_interpreter_with_this_code(
    release: str, name: str, stored: str, tmp_path: Path
) -> None:
    assert stored_by_value(stored) == [], f"{release} {name}: stored bytecode"
    loaded = subprocess.run(
        [
            str(Project.load().program_python()),
            "-c",
            "import base64, dill, sys; print(type(dill.loads(base64.b64decode(sys.stdin.read()))).__name__)",
        ],
        input=stored,
        cwd=tmp_path,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert loaded.returncode == 0, (
        f"the {name} provider stored by {release} no longer loads, so `pulumi destroy` and `refresh` of "
        f"every stack deployed with it fail; it refers to {sorted(set(pickled_globals(stored)))}: keep "
        f"those names importable (a compatibility shim):\n{loaded.stderr[-2000:]}"
    )


def resource_state(run: ProgramRun, name: str) -> dict[str, Any]:
    [resource] = [resource for resource in run.of_type(DYNAMIC_RESOURCE) if resource.name == name]
    return {**resource.inputs, **{key: value for key, value in resource.state.items() if value is not None}}


def test_destroy_rebuilds_each_released_provider_through_the_engines_process(
    dev_run: ProgramRun, prod_run: ProgramRun
) -> None:
    """Delete as `pulumi destroy` sends it: the state, carrying the released provider."""
    runs = {"dev": dev_run, "prod": prod_run}
    with DynamicProviderProcess(Project.load()) as provider:
        for path in RELEASES:
            for name, entry in json.loads(path.read_text()).items():
                run = runs[entry["stack"]]
                [resource] = [r for r in run.of_type(DYNAMIC_RESOURCE) if r.name == name]
                state = {**resource_state(run, name), "__provider": entry["provider"]}
                provider.delete(resource.urn, resource.id, state)


def test_a_stale_stored_provider_is_replaced_by_an_update_that_runs_nothing(dev_run: ProgramRun) -> None:
    """The diff of the current provider sees the stored copy differ; the update stores the current
    one and keeps the release's outputs (no AWS client exists here: a migration would fail)."""
    [release] = [
        resource for resource in dev_run.of_type(DYNAMIC_RESOURCE) if resource.name == "release-migrate"
    ]
    current = release.inputs["__provider"]
    # Loadable, but not the current copy: what an earlier release's pickle looks like to the engine.
    stale = base64.b64encode(dill.dumps(MigrationProvider(poll_interval_seconds=1.0), recurse=True)).decode()
    assert stale != current
    olds = {
        **resource_state(dev_run, "release-migrate"),
        "task_arn": "arn:aws:ecs:us-east-1:123456789012:task/c/0",
    }
    with DynamicProviderProcess(Project.load()) as provider:
        olds_stale = {**olds, "__provider": stale}
        diff = provider.diff(release.urn, release.id, olds_stale, release.inputs)
        assert diff.changes == diff.DIFF_SOME, "a stale stored provider must be replaced"
        outputs = provider.update(release.urn, release.id, olds_stale, release.inputs)
        unchanged = provider.diff(release.urn, release.id, {**olds, "__provider": current}, release.inputs)
    assert outputs["__provider"] == current, "the state stores the current provider"
    assert outputs["task_arn"] == olds["task_arn"], "the outputs of the release that ran stay"
    assert unchanged.changes == unchanged.DIFF_NONE, "after the update, the next preview changes nothing"
