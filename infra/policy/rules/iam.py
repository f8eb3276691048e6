"""IAM: what the roles and policies allow (Security Hub IAM.1 and the KMS controls on IAM policies)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from .shared import IAM_POLICY, IAM_ROLE, IAM_ROLE_POLICY, Props, Rule, as_list, resource_rule

POLICY_HOLDERS = (IAM_ROLE, IAM_ROLE_POLICY, IAM_POLICY)
DECRYPT_ACTIONS = frozenset({"kms:Decrypt", "kms:ReEncryptFrom", "kms:*", "kms:Decrypt*", "kms:ReEncrypt*"})


def _policy_documents(props: Props) -> Iterator[Any]:
    """The policy of a policy resource, or a role's inline policies."""
    for document in [props.get("policy"), *(p.get("policy") for p in as_list(props.get("inlinePolicies")))]:
        if document:
            yield json.loads(document) if isinstance(document, str) else document


def _no_full_admin(props: Props) -> Iterator[str]:
    for document in _policy_documents(props):
        for statement in as_list(document.get("Statement")):
            if (
                statement.get("Effect") == "Allow"
                and set(as_list(statement.get("Action"))) & {"*", "*:*"}
                and "*" in as_list(statement.get("Resource"))
            ):
                yield f"statement {statement.get('Sid', '(no Sid)')} allows every action on every resource"


def _no_decrypt_on_all_keys(props: Props) -> Iterator[str]:
    for document in _policy_documents(props):
        for statement in as_list(document.get("Statement")):
            if (
                statement.get("Effect") == "Allow"
                and set(as_list(statement.get("Action"))) & DECRYPT_ACTIONS
                and "*" in as_list(statement.get("Resource"))
            ):
                sid = statement.get("Sid", "(no Sid)")
                yield f"statement {sid} decrypts with every KMS key: name the key"


RULES: tuple[Rule, ...] = (
    resource_rule(
        "iam-no-full-admin",
        "No IAM policy allows every action on every resource",
        ["IAM.1"],
        POLICY_HOLDERS,
        _no_full_admin,
    ),
    resource_rule(
        "iam-no-decrypt-with-every-key",
        "No IAM policy decrypts with every KMS key",
        ["KMS.1", "KMS.2"],
        POLICY_HOLDERS,
        _no_decrypt_on_all_keys,
    ),
)
