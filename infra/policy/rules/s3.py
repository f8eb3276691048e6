"""S3: the buckets and their settings resources (Security Hub S3 controls).

A bucket's settings (public access block, policy, versioning, encryption) are resources of their
own that name the bucket, by its id or its name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource

from .shared import (
    LOAD_BALANCER,
    S3_BUCKET,
    S3_BUCKET_POLICY,
    S3_PUBLIC_ACCESS_BLOCK,
    S3_VERSIONING,
    Rule,
    of_type,
    stack_rule,
    statements,
)

PUBLIC_ACCESS_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
ELB_LOG_DELIVERY = "logdelivery.elasticloadbalancing.amazonaws.com"


def _bucket_ids(bucket: PolicyResource) -> set[Any]:
    return {bucket.props.get("id"), bucket.props.get("bucket")} - {None}


def settings_by_bucket(resources: Sequence[PolicyResource], setting_type: str) -> dict[Any, PolicyResource]:
    """The settings resources of one type (public access block, policy, ...) by the bucket they name."""
    return {setting.props.get("bucket"): setting for setting in of_type(resources, setting_type)}


def setting_of(settings: Mapping[Any, PolicyResource], bucket: PolicyResource) -> PolicyResource | None:
    return next((settings[i] for i in _bucket_ids(bucket) if i in settings), None)


def _access_log_buckets(resources: Sequence[PolicyResource]) -> set[Any]:
    """Buckets a load balancer logs to, or whose policy lets ELB log delivery write (ALB access
    logs support only S3-managed keys, and nobody edits a log)."""
    logged_to = {
        (lb.props.get("accessLogs") or {}).get("bucket")
        for lb in of_type(resources, LOAD_BALANCER)
        if (lb.props.get("accessLogs") or {}).get("enabled")
    }
    for policy in of_type(resources, S3_BUCKET_POLICY):
        principals = json.dumps(
            [statement.get("Principal") for statement in statements(policy.props.get("policy"))]
        )
        if ELB_LOG_DELIVERY in principals:
            logged_to.add(policy.props.get("bucket"))
    return logged_to


def app_buckets(resources: Sequence[PolicyResource]) -> list[PolicyResource]:
    """Buckets of application data: every bucket but the load balancer's access logs."""
    logs = _access_log_buckets(resources)
    return [bucket for bucket in of_type(resources, S3_BUCKET) if not _bucket_ids(bucket) & logs]


def _not_public(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    blocks = settings_by_bucket(resources, S3_PUBLIC_ACCESS_BLOCK)
    for bucket in of_type(resources, S3_BUCKET):
        block = setting_of(blocks, bucket)
        if block is None:
            yield bucket.urn, "the bucket needs an aws.s3.BucketPublicAccessBlock"
        elif not all(block.props.get(flag) is True for flag in PUBLIC_ACCESS_FLAGS):
            yield block.urn, f"{', '.join(PUBLIC_ACCESS_FLAGS)} must all be true"


def _denies_plain_http(policy: PolicyResource) -> bool:
    return any(
        statement.get("Effect") == "Deny"
        and (statement.get("Condition") or {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        for statement in statements(policy.props.get("policy"))
    )


def _tls_only(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    policies = settings_by_bucket(resources, S3_BUCKET_POLICY)
    for bucket in of_type(resources, S3_BUCKET):
        policy = setting_of(policies, bucket)
        if policy is None or not _denies_plain_http(policy):
            yield bucket.urn, "the bucket policy must deny requests without TLS (aws:SecureTransport false)"


def _versioned(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    versionings = settings_by_bucket(resources, S3_VERSIONING)
    for bucket in app_buckets(resources):
        versioning = setting_of(versionings, bucket)
        status = ((versioning.props.get("versioningConfiguration") or {}) if versioning else {}).get("status")
        if status != "Enabled":
            yield bucket.urn, "versioning must be Enabled (aws.s3.BucketVersioning)"


RULES: tuple[Rule, ...] = (
    stack_rule(
        "s3-bucket-not-public",
        "S3 buckets block every kind of public access",
        ["S3.1", "S3.8"],
        _not_public,
    ),
    stack_rule("s3-tls-only", "S3 buckets refuse requests without TLS", ["S3.5"], _tls_only),
    stack_rule(
        "s3-versioning",
        "Application data buckets keep versions of overwritten and deleted objects",
        ["S3.14"],
        _versioned,
        relaxable=True,
    ),
)
