"""The bootstrap program under Pulumi mocks: who may assume which role, and how the state is kept."""

from __future__ import annotations

import json
import re
import runpy
from typing import Any

import pulumi
import pytest
from pulumi.runtime.mocks import MockResourceArgs

from testkit.program import FabricatingMocks, RecordedResource, RecordingMonitor
from tests.delivery.workflows import ACTION_FILES, REPO_ROOT, workflow_files

BOOTSTRAP_DIR = REPO_ROOT / "bootstrap"
PROJECT = "djcelery-bootstrap"
REPOSITORY = "acme/djcelery"
OIDC = "token.actions.githubusercontent.com"


class BootstrapMocks(FabricatingMocks):
    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict]:
        resource_id, state = super().new_resource(args)
        if args.typ == "aws:s3/bucket:Bucket":
            state["bucket"] = f"{args.inputs['bucketPrefix']}20260101"
        if args.typ == "aws:kms/key:Key":
            state["keyId"] = "1234abcd-12ab-34cd-56ef-1234567890ab"
        return resource_id, state


class BootstrapRun:
    def __init__(self, resources: list[RecordedResource], outputs: dict[str, Any]) -> None:
        self.resources, self.outputs = resources, outputs

    def one(self, type_token: str, name: str) -> RecordedResource:
        [resource] = [r for r in self.resources if r.type == type_token and r.name == name]
        return resource

    def policy(self, type_token: str, name: str, key: str = "policy") -> dict[str, Any]:
        return json.loads(self.one(type_token, name).inputs[key])


def run_bootstrap(config: dict[str, str]) -> BootstrapRun:
    mocks = BootstrapMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.reset_options(project=PROJECT, stack="account", preview=False)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack="account", preview=False, monitor=monitor)
    pulumi.runtime.set_all_config({f"{PROJECT}:{key}": value for key, value in config.items()}, [])
    outputs: dict[str, Any] = {}

    @pulumi.runtime.test
    def run() -> pulumi.Output:
        runpy.run_path(str(BOOTSTRAP_DIR), run_name="__main__")
        return pulumi.Output.from_input(pulumi.runtime.get_root_resource().outputs).apply(outputs.update)

    run()
    return BootstrapRun(list(monitor.recorded), outputs)


@pytest.fixture(scope="module")
def bootstrap() -> BootstrapRun:
    return run_bootstrap({"githubRepository": REPOSITORY})


def trust(run: BootstrapRun, role: str) -> dict[str, Any]:
    [statement] = run.policy("aws:iam/role:Role", role, "assumeRolePolicy")["Statement"]
    return statement


def test_only_pull_request_runs_may_assume_the_read_only_preview_role(bootstrap) -> None:
    statement = trust(bootstrap, "preview")
    provider = bootstrap.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider", "github-actions")
    assert provider.inputs["url"] == f"https://{OIDC}"
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"]["Federated"].startswith("arn:aws:iam")
    assert statement["Condition"]["StringEquals"] == {
        f"{OIDC}:aud": "sts.amazonaws.com",
        f"{OIDC}:sub": [f"repo:{REPOSITORY}:pull_request"],
    }
    attachment = bootstrap.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "preview")
    assert attachment.inputs["policyArn"] == "arn:aws:iam::aws:policy/ReadOnlyAccess"


def test_only_jobs_in_the_deploy_environments_may_assume_the_deploy_role(bootstrap) -> None:
    conditions = trust(bootstrap, "deploy")["Condition"]
    assert conditions["StringEquals"][f"{OIDC}:sub"] == [
        f"repo:{REPOSITORY}:environment:{environment}" for environment in ("dev", "prod", "ephemeral")
    ]
    assert "StringLike" not in conditions, "no wildcard subjects"
    # Exactly the environments the workflows run the deploy role in.
    workflow_environments = set()
    for path in workflow_files():
        workflow_environments |= set(re.findall(r"environment: (dev|prod|ephemeral)\b", path.read_text()))
    assert workflow_environments == {"dev", "prod", "ephemeral"}


def test_previews_can_write_lock_files_but_not_state(bootstrap) -> None:
    statements = bootstrap.policy("aws:iam/rolePolicy:RolePolicy", "preview-state")["Statement"]
    [writes] = [s for s in statements if "s3:PutObject" in s["Action"]]
    assert writes["Resource"].endswith("/.pulumi/locks/*")
    [deploy_writes] = [
        s for s in bootstrap.policy("aws:iam/rolePolicy:RolePolicy", "deploy-state")["Statement"]
        if "s3:PutObject" in s["Action"]
    ]
    assert deploy_writes["Resource"].endswith("/*") and "/.pulumi/" not in deploy_writes["Resource"]


def test_the_deploy_role_cannot_change_the_ci_roles(bootstrap) -> None:
    statements = bootstrap.policy("aws:iam/rolePolicy:RolePolicy", "deploy-app-iam")["Statement"]
    [deny] = [s for s in statements if s["Effect"] == "Deny"]
    assert deny["Action"] == "iam:*" and deny["Resource"].endswith(":role/djcelery-ci-*")
    for role in ("preview", "deploy"):
        assert bootstrap.one("aws:iam/role:Role", role).inputs["namePrefix"].startswith("djcelery-ci-")


def test_state_bucket_is_private_versioned_encrypted_and_tls_only(bootstrap) -> None:
    block = bootstrap.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "pulumi-state").inputs
    assert all(block[key] for key in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                       "restrictPublicBuckets"))
    versioning = bootstrap.one("aws:s3/bucketVersioning:BucketVersioning", "pulumi-state").inputs
    assert versioning["versioningConfiguration"]["status"] == "Enabled"
    encryption_type = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    encryption = bootstrap.one(encryption_type, "pulumi-state").inputs["rules"][0]
    encryption = encryption["applyServerSideEncryptionByDefault"]
    assert encryption["sseAlgorithm"] == "aws:kms"
    assert encryption["kmsMasterKeyId"].startswith("arn:aws:kms:"), "state is encrypted with the secrets key"
    assert bootstrap.one("aws:kms/key:Key", "pulumi-secrets").inputs["enableKeyRotation"] is True
    [deny] = bootstrap.policy("aws:s3/bucketPolicy:BucketPolicy", "pulumi-state")["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_outputs_are_exactly_the_repository_variables_the_workflows_read(bootstrap) -> None:
    variables = bootstrap.outputs["githubVariables"]
    used = set()
    for path in [*workflow_files(), *ACTION_FILES]:
        used |= set(re.findall(r"\bvars\.([A-Z_]+)", path.read_text()))
    optional = {"PR_STACK_MAX_AGE_DAYS", "PR_STACK_BEAT_ENABLED"}  # have defaults in the workflows
    assert set(variables) == used - optional
    assert variables["PULUMI_BACKEND_URL"] == "s3://djcelery-pulumi-state-20260101"
    assert variables["PULUMI_SECRETS_PROVIDER"] == "awskms://alias/djcelery-pulumi?region=us-east-1"
    assert variables["AWS_DEPLOY_ROLE_ARN"].startswith("arn:aws:iam::123456789012:role/")


def test_an_existing_oidc_provider_is_reused() -> None:
    existing = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
    run = run_bootstrap({"githubRepository": REPOSITORY, "existingOidcProviderArn": existing})
    assert not [r for r in run.resources if r.type == "aws:iam/openIdConnectProvider:OpenIdConnectProvider"]
    assert trust(run, "deploy")["Principal"] == {"Federated": existing}


@pytest.mark.parametrize("repository", ["djcelery", "acme/djcelery/extra", "acme/dj celery", ""])
def test_a_malformed_repository_is_refused_before_anything_is_created(repository) -> None:
    with pytest.raises(ValueError, match="owner/name"):
        run_bootstrap({"githubRepository": repository})
