"""The engine's processes: the program and the release provider start where and how the real
engine starts them, and the provider stored in the state is rebuilt from references only."""

from __future__ import annotations

import base64
import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from testkit.engine.processes import (
    DynamicProviderProcess,
    EngineStartError,
    Project,
    clean_environment,
    run_program_fresh,
)
from testkit.engine.state import pickled_globals, stored_by_value
from testkit.program import ProgramRun, RecordedResource

DYNAMIC_RESOURCE = "pulumi-python:dynamic:Resource"


def dynamic_resources(run: ProgramRun) -> list[RecordedResource]:
    found = run.of_type(DYNAMIC_RESOURCE)
    assert found, f"stack {run.stack} declares no dynamic resource"
    return found


def test_the_program_and_its_provider_process_find_the_same_virtualenv() -> None:
    project = Project.load()
    assert project.program_python() == project.provider_python(), (
        "the engine resolves the virtualenv against the project root for the program and against "
        "the program directory for dynamic providers; they must be the same directory"
    )


def test_the_previous_layout_would_have_failed_every_preview() -> None:
    # main: infra/ with virtualenv: .venv made the provider look for infra/.venv (pulumi/pulumi#7061).
    old = replace(Project.load(), main="infra/")
    assert old.program_python().is_file()
    with pytest.raises(EngineStartError, match=r"infra/\.venv.*doesn't exist"):
        old.provider_python()


def test_the_program_runs_in_a_fresh_interpreter_from_its_directory(dev_run: ProgramRun) -> None:
    declared = run_program_fresh(Project.load(), "dev")
    assert declared == len(dev_run.resources), (
        "a fresh interpreter must declare what the test process declares"
    )


@pytest.mark.parametrize("run_name", ["dev_run", "prod_run", "ephemeral_run"])
def test_the_stored_provider_holds_references_only(run_name: str, request: pytest.FixtureRequest) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    for resource in dynamic_resources(run):
        stored = resource.inputs["__provider"]
        assert stored_by_value(stored) == [], (
            f"{resource.name}: the state holds bytecode ({stored_by_value(stored)}), which another "
            "Python version may not load"
        )
        modules = {name.rsplit(".", 1)[0] for name in pickled_globals(stored)}
        outside = {module for module in modules if module != "time" and not module.startswith("infra.")}
        assert outside == set(), f"{resource.name} refers to modules the program does not install: {outside}"


def test_the_stored_provider_loads_in_a_fresh_interpreter_elsewhere(
    dev_run: ProgramRun, tmp_path: Path
) -> None:
    python = Project.load().program_python()
    for resource in dynamic_resources(dev_run):
        loaded = subprocess.run(
            [
                str(python),
                "-c",
                "import base64, dill, sys; print(type(dill.loads(base64.b64decode(sys.stdin.read()))))",
            ],
            input=resource.inputs["__provider"],
            cwd=tmp_path,
            env=clean_environment(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert loaded.returncode == 0, f"{resource.name}: {loaded.stderr}"
        assert "infra." in loaded.stdout and "Provider" in loaded.stdout, loaded.stdout


def test_the_provider_process_diffs_and_deletes_from_the_state(dev_run: ProgramRun) -> None:
    """What preview and destroy ask of the provider, asked the way the engine asks it."""
    with DynamicProviderProcess(Project.load()) as provider:
        for resource in dynamic_resources(dev_run):
            state = {
                **resource.inputs,
                "task_arn": "arn:aws:ecs:us-east-1:123456789012:task/c/0",
                "exit_code": 0,
            }
            unchanged = provider.diff(resource.urn, resource.id, state, resource.inputs)
            assert unchanged.changes == unchanged.DIFF_NONE, f"{resource.name}: a preview would run it again"
            provider.delete(resource.urn, resource.id, state)


def test_a_provider_that_cannot_be_loaded_fails_the_process(dev_run: ProgramRun) -> None:
    """The control: the provider process really rebuilds the stored object (and fails on garbage)."""
    [release, *_] = dynamic_resources(dev_run)
    broken = {**release.inputs, "__provider": base64.b64encode(b"not a pickle").decode()}
    with (
        DynamicProviderProcess(Project.load()) as provider,
        pytest.raises(Exception, match=r"pickle|dill|load"),
    ):
        provider.delete(release.urn, release.id, broken)


def test_the_installed_package_holds_what_deploys_and_nothing_else(tmp_path: Path) -> None:
    """The program's virtualenv imports the program, the bootstrap and the metric schema from
    anywhere (the engine's processes run from the project root, the provider from wherever the CLI
    is); test and benchmark code is not installed."""
    python = Project.load().program_python()
    probe = (
        "import importlib.util, json\n"
        "names = ['infra', 'bootstrap', 'queuemetrics', 'testkit', 'bench', 'dockerkit']\n"
        "print(json.dumps({name: importlib.util.find_spec(name) is not None for name in names}))\n"
    )
    found = subprocess.run(
        [str(python), "-c", probe],
        cwd=tmp_path,
        env=clean_environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(found.stdout) == {
        "infra": True,
        "bootstrap": True,
        "queuemetrics": True,
        "testkit": False,
        "bench": False,
        "dockerkit": False,
    }
