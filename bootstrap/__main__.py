"""One-time CI/CD setup: the Pulumi state bucket, the KMS key for stack secrets, the ECS service-linked
role, the GitHub OIDC roles.

Run once per AWS account (see docs/delivery.md); its outputs are the repository variables the
workflows read. The bucket and the key are protected: they hold every stack's state and secrets.
"""

import json

import pulumi
import pulumi_aws as aws

# Importable by name because the project is installed in its virtualenv (pyproject.toml).
from bootstrap import access

SECRETS_KEY_ALIAS = "alias/djcelery-pulumi"
NONCURRENT_STATE_DAYS = 90

config = pulumi.Config()
repository = access.validate_repository(config.require("githubRepository"))
existing_oidc_provider_arn = config.get("existingOidcProviderArn") or ""
account_id = aws.get_caller_identity().account_id
region = aws.get_region().region
keep = pulumi.ResourceOptions(protect=True)

# --- Secrets provider key ----------------------------------------------------------------------
secrets_key = aws.kms.Key(
    "pulumi-secrets",
    description="Encrypts the secrets in djcelery's Pulumi stack configuration and state",
    enable_key_rotation=True,
    deletion_window_in_days=30,
    opts=keep,
)
aws.kms.Alias("pulumi-secrets", name=SECRETS_KEY_ALIAS, target_key_id=secrets_key.key_id)

# --- State bucket ------------------------------------------------------------------------------
state_bucket = aws.s3.Bucket("pulumi-state", bucket_prefix="djcelery-pulumi-state-", opts=keep)
aws.s3.BucketOwnershipControls(
    "pulumi-state",
    bucket=state_bucket.id,
    rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
)
aws.s3.BucketPublicAccessBlock(
    "pulumi-state",
    bucket=state_bucket.id,
    block_public_acls=True,
    block_public_policy=True,
    ignore_public_acls=True,
    restrict_public_buckets=True,
)
# Every state write is a new version: a bad update or a deleted stack can be rolled back.
aws.s3.BucketVersioning(
    "pulumi-state",
    bucket=state_bucket.id,
    versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
)
aws.s3.BucketServerSideEncryptionConfiguration(
    "pulumi-state",
    bucket=state_bucket.id,
    rules=[
        aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
            apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                sse_algorithm="aws:kms", kms_master_key_id=secrets_key.arn
            ),
            bucket_key_enabled=True,
        )
    ],
)
aws.s3.BucketLifecycleConfiguration(
    "pulumi-state",
    bucket=state_bucket.id,
    rules=[
        aws.s3.BucketLifecycleConfigurationRuleArgs(
            id="expire-old-state-versions",
            status="Enabled",
            filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
            noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                noncurrent_days=NONCURRENT_STATE_DAYS
            ),
            abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                days_after_initiation=7
            ),
        )
    ],
)
aws.s3.BucketPolicy(
    "pulumi-state",
    bucket=state_bucket.id,
    policy=state_bucket.arn.apply(lambda arn: json.dumps(access.tls_only_bucket_policy(arn))),
)

# --- ECS service-linked role --------------------------------------------------------------------
# ECS makes AWSServiceRoleForECS itself on first use, but in an account that lacks it the first
# cluster can fail ("Unable to assume the service linked role"). So the bootstrap creates it. Creating
# one that exists fails, so look first and adopt an existing role instead (the import option); the
# ECS of every region uses it, so destroying the bootstrap leaves it in place.
ECS_SERVICE = "ecs.amazonaws.com"
existing_ecs_role = aws.iam.get_roles(
    name_regex="^AWSServiceRoleForECS$", path_prefix=f"/aws-service-role/{ECS_SERVICE}/"
)
aws.iam.ServiceLinkedRole(
    "ecs",
    aws_service_name=ECS_SERVICE,
    description="Lets Amazon ECS manage the account's clusters and services (djcelery bootstrap)",
    opts=pulumi.ResourceOptions(
        import_=next(iter(existing_ecs_role.arns), None),
        # An adopted role keeps its own description and tags: the import takes them as they are.
        ignore_changes=["description", "tags"],
        retain_on_delete=True,
    ),
)

# --- GitHub OIDC roles -------------------------------------------------------------------------
if existing_oidc_provider_arn:
    oidc_provider_arn = pulumi.Output.from_input(existing_oidc_provider_arn)
else:
    oidc_provider_arn = aws.iam.OpenIdConnectProvider(
        "github-actions", url=access.GITHUB_OIDC_URL, client_id_lists=[access.STS_AUDIENCE]
    ).arn


def github_role(name: str, subjects: list[str], managed_policy: str, *, write_state: bool) -> aws.iam.Role:
    role = aws.iam.Role(
        name,
        name_prefix=f"{access.CI_ROLE_PREFIX}{name}-",
        description=f"GitHub Actions of {repository}: {name}",
        assume_role_policy=oidc_provider_arn.apply(
            lambda arn: json.dumps(access.github_trust_policy(arn, subjects))
        ),
        max_session_duration=3 * 3600,  # a prod update with a database change can take long
    )
    aws.iam.RolePolicyAttachment(name, role=role.name, policy_arn=managed_policy)
    aws.iam.RolePolicy(
        f"{name}-state",
        role=role.id,
        policy=pulumi.Output.all(state_bucket.arn, secrets_key.arn).apply(
            lambda arns: json.dumps(access.state_access_policy(arns[0], arns[1], write_state=write_state))
        ),
    )
    return role


preview_role = github_role(
    "preview",
    access.preview_subjects(repository),
    "arn:aws:iam::aws:policy/ReadOnlyAccess",
    write_state=False,
)
deploy_role = github_role(
    "deploy",
    access.deploy_subjects(repository),
    "arn:aws:iam::aws:policy/PowerUserAccess",
    write_state=True,
)
aws.iam.RolePolicy(
    "deploy-app-iam", role=deploy_role.id, policy=json.dumps(access.app_iam_policy(account_id))
)

# --- What the workflows need: set these as GitHub repository variables -------------------------
pulumi.export(
    "githubVariables",
    {
        "PULUMI_BACKEND_URL": state_bucket.bucket.apply(lambda bucket: f"s3://{bucket}"),
        "PULUMI_SECRETS_PROVIDER": f"awskms://{SECRETS_KEY_ALIAS}?region={region}",
        "AWS_REGION": region,
        "AWS_DEPLOY_ROLE_ARN": deploy_role.arn,
        "AWS_PREVIEW_ROLE_ARN": preview_role.arn,
    },
)
