"""`pulumi destroy` of a thin preview, replayed against its base (testkit/engine/destroy.py): the
preview's own resources go, the tenant before what its drop task needs, and the base keeps
everything."""

from __future__ import annotations

import pytest

from testkit.engine.destroy import replay_preview_destroy
from testkit.program import ProgramRun


@pytest.fixture
def runs(preview_base_run: ProgramRun, preview_run: ProgramRun) -> tuple[ProgramRun, ProgramRun]:
    return preview_base_run, preview_run


def test_a_preview_destroys_cleanly_and_leaves_its_base_whole(runs: tuple[ProgramRun, ProgramRun]) -> None:
    base, preview = runs
    replayed = replay_preview_destroy(preview, base)
    outcome = replayed.outcome
    assert outcome.clean, (outcome.stopped_at_preview, outcome.failed, outcome.never_reached)
    assert replayed.base_deleted == []
    for owned in (
        "ListenerRule web-rule",
        "TargetGroup web-targets",
        "Resource tenant",
        "Secret secrets-database-url",
    ):
        assert owned in outcome.deleted, owned


def test_the_tenant_is_dropped_while_its_secret_still_exists(
    runs: tuple[ProgramRun, ProgramRun],
) -> None:
    """The drop runs the base's tenant task, which reads the preview's DATABASE_URL secret with its
    task role (GetSecretValue); the engine deletes a resource only after everything depending on it
    (pulumi/pulumi pkg/resource/deploy). The base's task definition is not the preview's to delete."""
    base, preview = runs
    replayed = replay_preview_destroy(preview, base)
    for needed in ("SecretVersion secrets-database-url", "Secret secrets-database-url"):
        assert replayed.deleted_before("Resource tenant", needed), needed
    tenant_task = ("TaskDefinition tenant", "Role tenant", "LogGroup tenant")
    assert not [label for label in replayed.outcome.deleted if label.startswith(tenant_task)]
