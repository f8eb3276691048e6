"""Session fixtures: the whole program run once per stack, shared by every test that reads it."""

import pytest

from tests.infra.harness import ProgramRun, run_program


@pytest.fixture(scope="session")
def dev_run() -> ProgramRun:
    return run_program("dev")


@pytest.fixture(scope="session")
def prod_run() -> ProgramRun:
    return run_program("prod")


@pytest.fixture(scope="session")
def ephemeral_run() -> ProgramRun:
    """A fresh per-pull-request stack: no stack file, Pulumi.yaml defaults plus `ephemeral: true`."""
    return run_program("pr-123", {"ephemeral": True})
