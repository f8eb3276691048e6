"""The models read a real stack's state too: the cloud test runs them on what `pulumi up` made."""

from __future__ import annotations

import pytest

from testkit.engine.destroy import replay_destroy
from testkit.engine.graph import DependencyGraph
from testkit.engine.readiness import missing_before_start
from testkit.engine.state import deployment_of, run_from_deployment
from testkit.program import ProgramRun


@pytest.mark.parametrize("run_name", ["dev_run", "prod_run"])
def test_state_read_back_gives_the_same_graph(run_name: str, request: pytest.FixtureRequest) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    restored = run_from_deployment(run.stack, deployment_of(run))
    original, read = DependencyGraph(run), DependencyGraph(restored)
    assert {r.urn: original.waits_for(r) for r in run.resources} == {
        r.urn: read.waits_for(r) for r in restored.resources
    }
    assert missing_before_start(restored) == missing_before_start(run) == {}
    assert replay_destroy(restored) == replay_destroy(run)
