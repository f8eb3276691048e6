"""`pulumi destroy`, replayed with the rules Pulumi and AWS enforce: disposable stacks go cleanly,
prod stops at preview having deleted nothing."""

from __future__ import annotations

from dataclasses import replace

import pytest

from testkit.engine.destroy import replay_destroy
from testkit.program import ProgramRun, run_program

STATEFUL = {
    "Instance database-postgres",
    "ReplicationGroup broker-redis",
    "LoadBalancer web-lb-alb",
    "Repository image-repository",
    "Bucket web-lb-access-logs",
    "Bucket media-bucket",
    "Key data-key-key",
}


@pytest.mark.parametrize("run_name", ["dev_run", "ephemeral_run", "custom_run"])
def test_a_disposable_stack_destroys_cleanly(run_name: str, request: pytest.FixtureRequest) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    outcome = replay_destroy(run)
    assert outcome.clean, (
        f"`pulumi destroy` of {run.stack} would stop: protected {outcome.stopped_at_preview}, "
        f"failed {outcome.failed}, never reached {outcome.never_reached}"
    )
    assert len(outcome.deleted) == len([r for r in run.resources if r.id]), "everything is deleted"


def test_dev_with_access_logs_still_destroys_cleanly() -> None:
    outcome = replay_destroy(run_program("dev", {"albAccessLogs": True}))
    assert outcome.clean, outcome.failed


def test_prod_stops_at_preview_having_deleted_nothing(prod_run: ProgramRun) -> None:
    outcome = replay_destroy(prod_run)
    assert set(outcome.stopped_at_preview) == STATEFUL, outcome.stopped_at_preview
    assert outcome.deleted == [], "a protected stack loses nothing to `pulumi destroy`"


def test_deletion_protection_alone_would_delete_half_of_prod(prod_run: ProgramRun) -> None:
    """The defect `protect` prevents: AWS refuses the database and the ALB only at their own delete
    call, after the services, secrets and broker are gone."""
    unprotected = replace(
        prod_run, resources=[replace(r, options={**r.options, "protect": False}) for r in prod_run.resources]
    )
    outcome = replay_destroy(unprotected)
    assert {"Instance database-postgres", "LoadBalancer web-lb-alb"} <= set(outcome.failed)
    lost = {"ReplicationGroup broker-redis", "Service web-service", "Secret secrets-database-url"}
    assert lost <= set(outcome.deleted), "the model shows what such a destroy deletes before failing"


def test_tearing_down_prod_on_purpose_works() -> None:
    """The documented path: turn off protectResources and both deletion protections, `pulumi up`,
    then `pulumi destroy`."""
    run = run_program(
        "prod", {"protectResources": False, "dbDeletionProtection": False, "albDeletionProtection": False}
    )
    outcome = replay_destroy(run)
    assert outcome.clean, outcome
    database = run.one("aws:rds/instance:Instance")
    assert database.inputs["skipFinalSnapshot"] is False, "prod's data leaves a final snapshot behind"


def test_the_media_bucket_holds_files_so_a_disposable_stack_force_destroys_it(dev_run: ProgramRun) -> None:
    """After some uploads the bucket holds objects: without `forceDestroy` AWS would refuse its delete."""
    bucket = dev_run.one("aws:s3/bucket:Bucket", "media")
    assert bucket.inputs["forceDestroy"] is True
    unforced = replace(
        dev_run,
        resources=[
            replace(r, inputs={**r.inputs, "forceDestroy": False}) if r is bucket else r
            for r in dev_run.resources
        ],
    )
    outcome = replay_destroy(unforced)
    assert outcome.failed == {
        "Bucket media-bucket": "BucketNotEmpty: The bucket you tried to delete is not empty"
    }


def test_a_stack_that_keeps_a_final_snapshot_keeps_the_key_that_encrypts_it() -> None:
    """The final snapshot of a destroyed stack stays readable: its KMS key is retained, never
    scheduled for deletion; an ephemeral stack (no final snapshot) schedules its key for deletion."""
    dev = run_program("dev", {"customerManagedKey": True})
    assert replay_destroy(dev).clean
    key = dev.one("aws:kms/key:Key")
    assert key.options["retainOnDelete"] is True
    assert dev.one("aws:rds/instance:Instance").inputs["skipFinalSnapshot"] is False
    ephemeral = run_program("pr-789", {"ephemeral": True, "customerManagedKey": True})
    assert replay_destroy(ephemeral).clean
    ephemeral_key = ephemeral.one("aws:kms/key:Key")
    assert (ephemeral_key.options["retainOnDelete"], ephemeral_key.inputs["deletionWindowInDays"]) == (
        False,
        7,
    )
