"""SMTP settings hold credentials: when a stack configures them they reach the tasks only through
Secrets Manager, like the other secrets."""

import json

import pytest

from infra import app_contract
from testkit.program import ProgramRun, run_program
from tests.infra.services.ecs_api import container_definitions

TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
EMAIL_URL = "smtp+tls://mailer:s3cr3t-pw@smtp.example.com:587"


def test_a_configured_email_url_is_a_secret_of_every_task_and_never_plain_text() -> None:
    run = run_program(
        "pr-789", {"ephemeral": True, "emailUrl": EMAIL_URL, "defaultFromEmail": "hi@example.com"}
    )
    email_arn = run.outputs["secretArns"][app_contract.EMAIL_URL]
    [version] = [
        version
        for version in run.of_type("aws:secretsmanager/secretVersion:SecretVersion")
        if version.inputs["secretString"] == EMAIL_URL
    ]
    assert version.inputs["secretId"] in email_arn
    for definition in run.of_type("aws:ecs/taskDefinition:TaskDefinition"):
        for container in container_definitions(definition):
            secrets = {secret["name"]: secret["valueFrom"] for secret in container["secrets"]}
            environment = {variable["name"]: variable["value"] for variable in container["environment"]}
            assert secrets[app_contract.EMAIL_URL] == email_arn, definition.name
            assert environment[app_contract.DEFAULT_FROM_EMAIL] == "hi@example.com"
            assert EMAIL_URL not in json.dumps(container), f"{definition.name} carries the SMTP password"
    assert EMAIL_URL not in json.dumps(run.outputs)


def test_without_smtp_settings_no_email_secret_exists(dev_run) -> None:
    assert app_contract.EMAIL_URL not in dev_run.outputs["secretArns"]


def test_a_new_secret_value_gives_every_task_definition_a_new_revision() -> None:
    """ECS injects secrets "when the container is initially started. If the secret is subsequently
    updated or rotated, the container will not receive the updated value automatically" (ECS
    developer guide, Secrets Manager secrets as environment variables). A task definition is
    immutable and names only the secret's ARN, so only a new revision restarts the tasks: a new
    value must change every task definition (and so roll every service and run the release)."""
    runs = [
        run_program("pr-789", {"ephemeral": True, "emailUrl": url})
        for url in ("smtp://a@mail.example.com:25", "smtp://b@mail.example.com:25")
    ]
    before, after = (
        {
            definition.name: definition.inputs["containerDefinitions"]
            for definition in run.of_type(TASK_DEFINITION)
        }
        for run in runs
    )
    assert before.keys() == after.keys()
    unchanged = [name for name in before if before[name] == after[name]]
    assert unchanged == [], f"these keep running with the old SMTP settings: {unchanged}"
    fingerprints = {
        variable["value"]
        for definition in runs[1].of_type(TASK_DEFINITION)
        for container in container_definitions(definition)
        for variable in container["environment"]
        if variable["name"] == app_contract.SECURE_CONFIG_DIGEST
    }
    assert len(fingerprints) == 1, "every container carries the same fingerprint"
    assert "b@mail" not in json.dumps([definition.inputs for definition in runs[1].of_type(TASK_DEFINITION)])


def test_an_unchanged_secret_value_changes_no_task_definition(dev_run) -> None:
    again = run_program("dev")
    assert {d.name: d.inputs["containerDefinitions"] for d in again.of_type(TASK_DEFINITION)} == {
        d.name: d.inputs["containerDefinitions"] for d in dev_run.of_type(TASK_DEFINITION)
    }, "a perpetual difference would run the release and roll every service on every up"


@pytest.mark.parametrize("stack", ["dev_run", "prod_run"])
def test_tasks_move_to_a_replaced_data_store_before_the_old_one_is_deleted(stack: str, request) -> None:
    """A replaced broker (created first, then deleted) gets a new REDIS_URL; the engine deletes the
    old one only "later on, after all creates/updates finish" (pulumi/pulumi
    pkg/resource/deploy/step_generator.go, create-before-replace), so every task definition that
    reads the new value, and the service update that deploys it, comes first. The database keeps a
    fixed identifier, so a replacement must delete it first: prod protects it, and moving to
    another instance is a restore the stack adopts (docs/operations.md)."""
    run: ProgramRun = request.getfixturevalue(stack)
    broker = run.one("aws:elasticache/replicationGroup:ReplicationGroup")
    assert broker.options["deleteBeforeReplace"] is False, "the broker must be created before deleted"
    versions = {
        version.urn
        for version in run.of_type("aws:secretsmanager/secretVersion:SecretVersion")
        if version.inputs["secretString"].startswith(("postgres", "redis"))
    }
    assert len(versions) == 2
    for definition in run.of_type(TASK_DEFINITION):
        assert versions <= set(definition.dependencies), f"{definition.name} does not follow the URL secrets"
