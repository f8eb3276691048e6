"""KMS: the stack's own key, and the data it encrypts (Security Hub KMS controls, ECR.5)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource

from .s3 import app_buckets, setting_of, settings_by_bucket
from .shared import (
    ECR_REPOSITORY,
    KMS_KEY,
    LOG_GROUP,
    RDS_INSTANCE,
    REPLICATION_GROUP,
    S3_ENCRYPTION,
    SECRET,
    SNS_TOPIC,
    Props,
    Rule,
    as_list,
    of_type,
    resource_rule,
    stack_rule,
    statements,
)


def _key_rotation(key: Props) -> Iterator[str]:
    if key.get("enableKeyRotation") is not True:
        yield "enableKeyRotation must be true"


def _key_not_public(key: Props) -> Iterator[str]:
    for statement in statements(key.get("policy")):
        principal = statement.get("Principal")
        anyone = principal == "*" or (isinstance(principal, Mapping) and "*" in as_list(principal.get("AWS")))
        if statement.get("Effect") == "Allow" and anyone and not statement.get("Condition"):
            yield f"statement {statement.get('Sid', '(no Sid)')} lets anyone use the key"


def _uses_key(keys: set[Any], value: Any) -> bool:
    return value is not None and value in keys


def _unkeyed(resources: Sequence[PolicyResource], keys: set[Any]) -> Iterator[PolicyResource]:
    """Data at rest not encrypted with one of the stack's keys."""
    for resource in of_type(resources, RDS_INSTANCE, REPLICATION_GROUP, SECRET, LOG_GROUP):
        if not _uses_key(keys, resource.props.get("kmsKeyId")):
            yield resource
    for topic in of_type(resources, SNS_TOPIC):
        if not _uses_key(keys, topic.props.get("kmsMasterKeyId")):
            yield topic
    for repository in of_type(resources, ECR_REPOSITORY):
        encryption = as_list(repository.props.get("encryptionConfigurations"))
        if not encryption or not _uses_key(keys, encryption[0].get("kmsKey")):
            yield repository
    encryptions = settings_by_bucket(resources, S3_ENCRYPTION)
    for bucket in app_buckets(resources):
        setting = setting_of(encryptions, bucket)
        rules = as_list(setting.props.get("rules")) if setting else []
        default = (rules[0].get("applyServerSideEncryptionByDefault") or {}) if rules else {}
        if not _uses_key(keys, default.get("kmsMasterKeyId")):
            yield bucket


def _customer_managed_key(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    keys = {key.props.get("arn") for key in of_type(resources, KMS_KEY)} - {None}
    for resource in _unkeyed(resources, keys):
        yield resource.urn, "encrypt it with the stack's customer-managed KMS key (customerManagedKey)"


RULES: tuple[Rule, ...] = (
    resource_rule("kms-key-rotation", "KMS keys rotate yearly", ["KMS.4"], [KMS_KEY], _key_rotation),
    resource_rule(
        "kms-key-not-public", "KMS key policies allow no anonymous use", ["KMS.5"], [KMS_KEY], _key_not_public
    ),
    stack_rule(
        "customer-managed-key",
        "The stack's own KMS key encrypts its database, broker, secrets, logs, topic, media and images",
        ["ECR.5"],
        _customer_managed_key,
        relaxable=True,
    ),
)
