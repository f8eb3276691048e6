"""IAM policy documents of the CI/CD bootstrap, as plain functions of plain values.

Two roles, both assumable only through GitHub's OIDC provider, only by workflows of one repository:
- the preview role, for `pull_request` runs: read-only AWS access plus the stack state and its locks;
- the deploy role, for jobs in the `dev`, `prod` and `ephemeral` GitHub environments, whose protection
  rules (required reviewers, deployment branches) decide who may deploy.
"""

from __future__ import annotations

import re
from typing import Any

GITHUB_OIDC_URL = "https://token.actions.githubusercontent.com"
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
STS_AUDIENCE = "sts.amazonaws.com"
# The workflows run the deploy role only inside these GitHub environments.
DEPLOY_ENVIRONMENTS = ("dev", "prod", "ephemeral")
STATE_LOCKS_PREFIX = ".pulumi/locks/"
# Name prefix of the two CI roles; the deploy role may manage every other role, never these.
CI_ROLE_PREFIX = "djcelery-ci-"

_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")

Policy = dict[str, Any]


def validate_repository(repository: str) -> str:
    if not _REPOSITORY.match(repository):
        raise ValueError(
            "githubRepository must be the GitHub repository as owner/name, e.g. acme/djcelery "
            f"(got {repository!r})"
        )
    return repository


def deploy_subjects(repository: str) -> list[str]:
    return [f"repo:{repository}:environment:{environment}" for environment in DEPLOY_ENVIRONMENTS]


def preview_subjects(repository: str) -> list[str]:
    return [f"repo:{repository}:pull_request"]


def github_trust_policy(oidc_provider_arn: str, subjects: list[str]) -> Policy:
    """Lets exactly these OIDC subjects (repository + event or environment) assume the role."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": oidc_provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{GITHUB_OIDC_HOST}:aud": STS_AUDIENCE,
                        f"{GITHUB_OIDC_HOST}:sub": subjects,
                    }
                },
            }
        ],
    }


def state_access_policy(bucket_arn: str, key_arn: str, *, write_state: bool) -> Policy:
    """The state bucket and the secrets key. Previews write only lock files: the state stays as is."""
    writable_objects = f"{bucket_arn}/*" if write_state else f"{bucket_arn}/{STATE_LOCKS_PREFIX}*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"], "Resource": bucket_arn},
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": f"{bucket_arn}/*"},
            {"Effect": "Allow", "Action": ["s3:PutObject", "s3:DeleteObject"], "Resource": writable_objects},
            {
                "Effect": "Allow",
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                "Resource": key_arn,
            },
        ],
    }


def app_iam_policy(account_id: str) -> Policy:
    """What the program needs from IAM beyond PowerUserAccess: the ECS task and execution roles.

    The CI roles themselves are off limits, so a deploy cannot widen its own permissions.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "iam:CreateRole", "iam:DeleteRole", "iam:GetRole", "iam:UpdateRole",
                    "iam:UpdateAssumeRolePolicy", "iam:TagRole", "iam:UntagRole", "iam:ListRoleTags",
                    "iam:PutRolePolicy", "iam:GetRolePolicy", "iam:DeleteRolePolicy", "iam:ListRolePolicies",
                    "iam:AttachRolePolicy", "iam:DetachRolePolicy", "iam:ListAttachedRolePolicies",
                    "iam:ListInstanceProfilesForRole", "iam:PassRole",
                ],
                "Resource": f"arn:aws:iam::{account_id}:role/*",
            },
            {
                # First use of ECS, ElastiCache, RDS, ELB and Application Auto Scaling in an account.
                "Effect": "Allow",
                "Action": "iam:CreateServiceLinkedRole",
                "Resource": f"arn:aws:iam::{account_id}:role/aws-service-role/*",
            },
            {
                "Effect": "Deny",
                "Action": "iam:*",
                "Resource": f"arn:aws:iam::{account_id}:role/{CI_ROLE_PREFIX}*",
            },
        ],
    }


def tls_only_bucket_policy(bucket_arn: str) -> Policy:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }
