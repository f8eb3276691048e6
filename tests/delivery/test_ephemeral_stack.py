"""A per-pull-request stack destroys with no manual step: the whole program for a fresh `pr-123` stack
(no stack file, `ephemeral: true`) under Pulumi mocks declares nothing that blocks or outlives
`pulumi destroy`.
"""

from __future__ import annotations

import re

import pytest

from testkit.program import ProgramRun, RecordedResource, run_program
from tests.delivery.workflows import REPO_ROOT

RDS_INSTANCE = "aws:rds/instance:Instance"
REPLICATION_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
ECR_REPOSITORY = "aws:ecr/repository:Repository"
SECRET = "aws:secretsmanager/secret:Secret"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
BUCKET = "aws:s3/bucket:Bucket"
KMS_KEY = "aws:kms/key:Key"
ECS_SERVICE = "aws:ecs/service:Service"
# Inputs that make AWS refuse a delete, or make the provider keep the resource on delete.
DELETION_BLOCKERS = (
    "deletionProtection",  # RDS
    "enableDeletionProtection",  # load balancers
    "deletionProtectionEnabled",  # DynamoDB
    "skipDestroy",  # log groups and others: the provider forgets the resource instead of deleting it
)
MINIMUM_KMS_DELETION_WINDOW_DAYS = 7


@pytest.fixture(scope="module")
def ephemeral() -> ProgramRun:
    return run_program("pr-123", {"ephemeral": True})


def describe(resource: RecordedResource) -> str:
    return f"{resource.type} {resource.name!r}"


def test_the_program_declares_the_resources_that_could_block_a_destroy(ephemeral) -> None:
    # Guards every test below against passing on an empty stack.
    declared = {resource.type for resource in ephemeral.resources}
    missing = {RDS_INSTANCE, REPLICATION_GROUP, ECR_REPOSITORY, SECRET, LOAD_BALANCER, LOG_GROUP} - declared
    assert not missing, f"the ephemeral stack declares none of {sorted(missing)}"


def test_no_resource_has_deletion_protection_or_skips_its_destroy(ephemeral) -> None:
    blocked = [
        f"{describe(resource)}: {key}={resource.inputs[key]!r}"
        for resource in ephemeral.resources
        for key in DELETION_BLOCKERS
        if resource.inputs.get(key)
    ]
    assert blocked == [], "an ephemeral stack must destroy without manual steps:\n" + "\n".join(blocked)


def test_the_database_leaves_no_snapshot_or_backup_behind(ephemeral) -> None:
    for database in ephemeral.of_type(RDS_INSTANCE):
        name = describe(database)
        assert database.inputs.get("skipFinalSnapshot") is True, f"{name} takes a final snapshot"
        assert not database.inputs.get("finalSnapshotIdentifier"), name
        assert database.inputs.get("deleteAutomatedBackups", True) is True, f"{name} keeps its backups"


def test_the_broker_takes_no_final_snapshot(ephemeral) -> None:
    for group in ephemeral.of_type(REPLICATION_GROUP):
        assert not group.inputs.get("finalSnapshotIdentifier"), f"{describe(group)} takes a final snapshot"


def test_the_image_repository_is_deleted_with_its_images(ephemeral) -> None:
    for repository in ephemeral.of_type(ECR_REPOSITORY):
        assert repository.inputs.get("forceDelete") is True, f"{describe(repository)} needs force_delete=True"


def test_secrets_are_deleted_at_once(ephemeral) -> None:
    # The default 30-day recovery window keeps the secret (and its name) after the destroy.
    for secret in ephemeral.of_type(SECRET):
        assert secret.inputs.get("recoveryWindowInDays") == 0, f"{describe(secret)} has a recovery window"


def test_buckets_are_emptied_on_destroy(ephemeral) -> None:
    for bucket in ephemeral.of_type(BUCKET):
        assert bucket.inputs.get("forceDestroy") is True, f"{describe(bucket)} needs force_destroy=True"


def test_keys_wait_the_shortest_deletion_window(ephemeral) -> None:
    for key in ephemeral.of_type(KMS_KEY):
        window = key.inputs.get("deletionWindowInDays")
        assert window == MINIMUM_KMS_DELETION_WINDOW_DAYS, f"{describe(key)}: deletion window {window}"


def test_no_resource_is_protected_or_retained_in_the_program_source() -> None:
    # Mocks do not record resource options, so literal `protect=True` / `retain_on_delete=True`
    # (which would hold back every stack, ephemeral ones included) are looked for in the source.
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}"
        for path in sorted((REPO_ROOT / "infra").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(r"\b(protect|retain_on_delete)\s*=\s*True\b", line)
    ]
    assert offenders == [], "\n".join(offenders)


def beat_services(run: ProgramRun) -> list[str]:
    return [service.name for service in run.of_type(ECS_SERVICE) if "beat" in service.name]


def test_beat_runs_in_a_pr_stack_by_default(ephemeral) -> None:
    assert len(beat_services(ephemeral)) == 1, [service.name for service in ephemeral.of_type(ECS_SERVICE)]


def test_beat_can_be_switched_off_by_config() -> None:
    without_beat = run_program("pr-123", {"ephemeral": True, "beatEnabled": False})
    assert without_beat.of_type(ECS_SERVICE), "the program declared no ECS service at all"
    assert beat_services(without_beat) == []
