"""The media bucket: where the app keeps user uploads, since its containers' root file systems are
read-only and a task's /tmp dies with it.

Private (every public access block on, ACLs off, TLS only), encrypted (the stack's KMS key with an
S3 Bucket Key, or S3-managed keys), optionally versioned with noncurrent versions expiring. The app
reaches it through django-storages with the task role's credentials (`task_policy`: this bucket
only) and hands out short-lived presigned URLs. Unprotected stacks are disposable, so their bucket
is deleted with its files (`force_destroy`); a protected one stops `pulumi destroy` at preview.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import iam
from infra.storage.config import MediaConfig

# S3 accepts a bucket_prefix of up to 37 characters (the rest of the 63 is a generated suffix).
MAX_BUCKET_PREFIX = 37
ABORT_INCOMPLETE_UPLOADS_DAYS = 7


def bucket_prefix(stack_prefix: str) -> str:
    suffix = "-media-"
    return stack_prefix[: MAX_BUCKET_PREFIX - len(suffix)].rstrip("-") + suffix


def abort_incomplete_uploads_rule() -> aws.s3.BucketLifecycleConfigurationRuleArgs:
    """A lifecycle rule that aborts multipart uploads left unfinished: their parts are billed as
    storage and never show as objects (S3 user guide, "Configuring a bucket lifecycle configuration
    to delete incomplete multipart uploads")."""
    return aws.s3.BucketLifecycleConfigurationRuleArgs(
        id="abort-incomplete-uploads",
        status="Enabled",
        filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
        abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
            days_after_initiation=ABORT_INCOMPLETE_UPLOADS_DAYS
        ),
    )


def block_public_access(
    name: str, bucket: aws.s3.Bucket, opts: pulumi.ResourceOptions
) -> aws.s3.BucketPublicAccessBlock:
    """Every S3 public access switch on: no public ACLs or policies, now or later."""
    return aws.s3.BucketPublicAccessBlock(
        name,
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=opts,
    )


def tls_only_statement(bucket_arn: str) -> iam.Statement:
    """Denies every request to the bucket that does not come over TLS."""
    return iam.statement(
        "TlsOnly",
        "s3:*",
        [bucket_arn, f"{bucket_arn}/*"],
        effect="Deny",
        principal="*",
        condition={"Bool": {"aws:SecureTransport": "false"}},
    )


def tls_only_policy(bucket_arn: str) -> str:
    return json.dumps(iam.document(tls_only_statement(bucket_arn)))


@dataclass(frozen=True)
class MediaBucketArgs:
    config: MediaConfig
    stack_prefix: str  # StackNames.prefix: the start of the bucket's name
    protect: bool  # Pulumi `protect`; unprotected, `pulumi destroy` deletes the bucket with its files
    key_arn: pulumi.Input[str] | None = None  # SSE-KMS with the stack's key; None: SSE-S3


class MediaBucket(pulumi.ComponentResource):
    bucket_name: pulumi.Output[str]
    arn: pulumi.Output[str]
    task_policy: pulumi.Output[str]  # what a task role needs to store and serve media (policy JSON)

    def __init__(self, name: str, args: MediaBucketArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("djcelery:index:MediaBucket", name, None, opts)
        self._name, self._args = name, args
        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket_prefix=bucket_prefix(args.stack_prefix),
            force_destroy=not args.protect,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        self._access(bucket)
        self._encryption(bucket)
        self._lifecycle(bucket)
        self.bucket_name = bucket.bucket
        self.arn = bucket.arn
        self.task_policy = pulumi.Output.all(bucket.arn, args.key_arn).apply(
            lambda values: json.dumps(iam.media_bucket_policy(values[0], values[1]))
        )
        self.register_outputs({"bucket_name": self.bucket_name, "arn": self.arn})

    def _access(self, bucket: aws.s3.Bucket) -> None:
        """Nobody outside the account, no ACLs, no plain HTTP."""
        name, child = self._name, pulumi.ResourceOptions(parent=self)
        block_public_access(f"{name}-public-access", bucket, child)
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child,
        )
        aws.s3.BucketPolicy(
            f"{name}-tls-only", bucket=bucket.id, policy=bucket.arn.apply(tls_only_policy), opts=child
        )

    def _encryption(self, bucket: aws.s3.Bucket) -> None:
        key_arn = self._args.key_arn
        default = aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
            sse_algorithm="aws:kms" if key_arn is not None else "AES256", kms_master_key_id=key_arn
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{self._name}-encryption",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=default,
                    # One data key per bucket and period instead of one KMS request per object.
                    bucket_key_enabled=key_arn is not None,
                )
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _lifecycle(self, bucket: aws.s3.Bucket) -> None:
        """Abandoned multipart uploads go; with versioning, so do old versions after a while."""
        config, name, child = self._args.config, self._name, pulumi.ResourceOptions(parent=self)
        everything = aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix="")
        rules = [abort_incomplete_uploads_rule()]
        versioning = None
        if config.versioning:
            versioning = aws.s3.BucketVersioning(
                f"{name}-versioning",
                bucket=bucket.id,
                versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
                opts=child,
            )
            rules.append(
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-noncurrent-versions",
                    status="Enabled",
                    filter=everything,
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=config.noncurrent_version_days
                    ),
                    expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                        expired_object_delete_marker=True
                    ),
                )
            )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=rules,
            # S3 asks for versioning to be configured before rules about versions.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning] if versioning else None),
        )
