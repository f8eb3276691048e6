"""SMTP settings hold credentials: when a stack configures them they reach the tasks only through
Secrets Manager, like the other secrets."""

import json

from infra import app_contract
from testkit.program import run_program
from tests.infra.services.ecs_api import container_definitions

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
