"""The bootstrap program under Pulumi mocks: who may assume which role, and how the state is kept."""

from __future__ import annotations

import json
import re
import runpy
from typing import Any

import pulumi
import pytest
from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs

from testkit.program import FabricatingMocks, RecordedResource, RecordingMonitor
from tests.delivery.workflows import ACTION_FILES, REPO_ROOT, workflow_files

BOOTSTRAP_DIR = REPO_ROOT / "bootstrap"
PROJECT = "djcelery-bootstrap"
REPOSITORY = "acme/djcelery"
OIDC = "token.actions.githubusercontent.com"


# The role ECS uses and where IAM keeps it (ECS developer guide, "Using service-linked roles for Amazon
# ECS": AWSServiceRoleForECS, trusted by ecs.amazonaws.com; IAM user guide, "Using service-linked
# roles": service-linked roles live under the path /aws-service-role/<service principal>/).
SERVICE_ROLES = "arn:aws:iam::123456789012:role/aws-service-role"
ECS_SERVICE_LINKED_ROLE = f"{SERVICE_ROLES}/ecs.amazonaws.com/AWSServiceRoleForECS"
OTHER_SERVICE_LINKED_ROLE = f"{SERVICE_ROLES}/elasticache.amazonaws.com/AWSServiceRoleForElastiCache"


class BootstrapMocks(FabricatingMocks):
    def __init__(self, account_roles: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.account_roles = account_roles  # ARNs of the roles the account already has

    def call(self, args: MockCallArgs) -> tuple[dict, list[tuple[str, str]] | None]:
        if args.token != "aws:iam/getRoles:getRoles":
            return super().call(args)
        # aws_iam_roles: ListRoles under the path prefix, then the names the regular expression matches.
        path_prefix, name_regex = args.args.get("pathPrefix", "/"), args.args.get("nameRegex", "")
        found = []
        for arn in self.account_roles:
            path, name = arn.split(":role", 1)[1].rsplit("/", 1)
            if f"{path}/".startswith(path_prefix) and re.search(name_regex, name):
                found.append(arn)
        names = [arn.rsplit("/", 1)[1] for arn in found]
        return {"arns": sorted(found), "names": sorted(names), "id": "us-east-1", **args.args}, []

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

    def of_type(self, type_token: str) -> list[RecordedResource]:
        return [resource for resource in self.resources if resource.type == type_token]

    def one(self, type_token: str, name: str) -> RecordedResource:
        [resource] = [r for r in self.resources if r.type == type_token and r.name == name]
        return resource

    def policy(self, type_token: str, name: str, key: str = "policy") -> dict[str, Any]:
        return json.loads(self.one(type_token, name).inputs[key])


def run_bootstrap(config: dict[str, str], account_roles: tuple[str, ...] = ()) -> BootstrapRun:
    mocks = BootstrapMocks(account_roles)
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
    # Defaults in the workflows; PREVIEW_BASE_STACK is set once the preview base exists (unset,
    # every pull request gets the full copy: docs/delivery.md#previews).
    optional = {"PR_STACK_MAX_AGE_DAYS", "PR_STACK_BEAT_ENABLED", "PREVIEW_BASE_STACK"}
    assert set(variables) == used - optional
    assert variables["PULUMI_BACKEND_URL"] == "s3://djcelery-pulumi-state-20260101"
    assert variables["PULUMI_SECRETS_PROVIDER"] == "awskms://alias/djcelery-pulumi?region=us-east-1"
    assert variables["AWS_DEPLOY_ROLE_ARN"].startswith("arn:aws:iam::123456789012:role/")


def test_an_existing_oidc_provider_is_reused() -> None:
    existing = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
    run = run_bootstrap({"githubRepository": REPOSITORY, "existingOidcProviderArn": existing})
    assert not [r for r in run.resources if r.type == "aws:iam/openIdConnectProvider:OpenIdConnectProvider"]
    assert trust(run, "deploy")["Principal"] == {"Federated": existing}


@pytest.mark.parametrize("account_roles", [(), (OTHER_SERVICE_LINKED_ROLE,)])
def test_an_account_without_the_ecs_service_linked_role_gets_it(account_roles) -> None:
    """A fresh account's first cluster can fail with "Unable to assume the service linked role"
    (aws-cloudformation/cloudformation-coverage-roadmap#818): the bootstrap creates the role first.
    Another service's role is not mistaken for it."""
    run = run_bootstrap({"githubRepository": REPOSITORY}, account_roles)

    [role] = run.of_type("aws:iam/serviceLinkedRole:ServiceLinkedRole")
    assert role.inputs["awsServiceName"] == "ecs.amazonaws.com"
    assert not role.options.get("importId"), "nothing to adopt in an account without the role"
    # ECS in every region of the account relies on it: destroying the bootstrap must not delete it.
    assert role.options.get("retainOnDelete") is True


def test_an_existing_ecs_service_linked_role_is_adopted_not_created_again() -> None:
    """CreateServiceLinkedRole answers "Service role name AWSServiceRoleForECS has been taken in this
    account" for a role that exists (IAM CreateServiceLinkedRole, InvalidInput), so the bootstrap
    imports it by its ARN (the import id of aws.iam.ServiceLinkedRole, pulumi-aws docs) and takes its
    description and tags as they are: the import option copies ignored inputs from the resource read,
    and a resource already in the state with that id is updated like any other (pulumi/pulumi
    developer-docs/architecture/import.md)."""
    account_roles = (OTHER_SERVICE_LINKED_ROLE, ECS_SERVICE_LINKED_ROLE)
    run = run_bootstrap({"githubRepository": REPOSITORY}, account_roles)

    [role] = run.of_type("aws:iam/serviceLinkedRole:ServiceLinkedRole")
    assert role.inputs["awsServiceName"] == "ecs.amazonaws.com"
    assert role.options.get("importId") == ECS_SERVICE_LINKED_ROLE
    assert set(role.options.get("ignoreChanges", ())) >= {"description", "tags"}


@pytest.mark.parametrize("repository", ["djcelery", "acme/djcelery/extra", "acme/dj celery", ""])
def test_a_malformed_repository_is_refused_before_anything_is_created(repository) -> None:
    with pytest.raises(ValueError, match="owner/name"):
        run_bootstrap({"githubRepository": repository})
