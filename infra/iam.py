"""IAM policy documents, as plain JSON-ready dicts: the one way the program writes a policy.

`statement()` and `document()` build every policy the program declares: the ECS task roles here,
and the publisher, bucket and topic policies beside their components. Each ECS task has two roles:
the execution role, which ECS itself uses to pull the image, write the container logs and read the
task's secrets at start, and the task role, which the application's own AWS calls use. Neither
grants a wildcard action on a wildcard resource.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

Policy = dict[str, Any]
Statement = dict[str, Any]

# ECS Exec: the agent in the container opens its session channels through these. They support no
# resource-level permissions, hence Resource "*".
ECS_EXEC_ACTIONS = (
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
)
ECR_PULL_ACTIONS = ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")
LOG_WRITE_ACTIONS = ("logs:CreateLogStream", "logs:PutLogEvents")


def statement(
    sid: str,
    actions: str | Sequence[str],
    resources: str | Sequence[str] | None = None,
    *,
    effect: Literal["Allow", "Deny"] = "Allow",
    principal: str | Mapping[str, str | Sequence[str]] | None = None,
    condition: Mapping[str, Mapping[str, Any]] | None = None,
) -> Statement:
    """One statement; a single action or resource stays a string, as AWS shows it."""
    built: Statement = {"Sid": sid, "Effect": effect}
    if principal is not None:
        built["Principal"] = principal if isinstance(principal, str) else dict(principal)
    built["Action"] = actions if isinstance(actions, str) else list(actions)
    if resources is not None:
        built["Resource"] = resources if isinstance(resources, str) else list(resources)
    if condition is not None:
        built["Condition"] = {operator: dict(values) for operator, values in condition.items()}
    return built


def document(*statements: Statement) -> Policy:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def ecs_tasks_trust_policy(account_id: str) -> Policy:
    """Only ECS tasks of this account may assume the role (confused-deputy guard)."""
    return document(
        statement(
            "EcsTasksOfThisAccount",
            "sts:AssumeRole",
            principal={"Service": "ecs-tasks.amazonaws.com"},
            condition={"StringEquals": {"aws:SourceAccount": account_id}},
        )
    )


def execution_role_policy(
    secret_arns: Sequence[str], repository_arn: str, log_group_arn: str, key_arn: str | None = None
) -> Policy:
    """With the stack's KMS key, reading the secrets also decrypts them with it (Secrets Manager
    calls KMS as the caller)."""
    statements = [
        statement("ReadTaskSecrets", "secretsmanager:GetSecretValue", sorted(secret_arns)),
        # The registry token is account-wide: this action has no resource-level permissions.
        statement("EcrLogin", "ecr:GetAuthorizationToken", "*"),
        statement("PullAppImage", ECR_PULL_ACTIONS, repository_arn),
        statement("WriteTaskLogs", LOG_WRITE_ACTIONS, f"{log_group_arn}:log-stream:*"),
    ]
    if key_arn:
        statements.append(
            statement(
                "DecryptTaskSecrets",
                "kms:Decrypt",
                key_arn,
                condition={"StringLike": {"kms:ViaService": "secretsmanager.*.amazonaws.com"}},
            )
        )
    return document(*statements)


def ecs_exec_policy(audit_log_group_arn: str, key_arn: str | None = None) -> Policy:
    """ECS Exec sessions, recorded in the cluster's audit log group (logging OVERRIDE: without these
    log permissions the agent cannot record a session and the session fails to start). With the
    stack's KMS key, the session channel is encrypted with it and the agent decrypts with it."""
    statements = [
        statement("EcsExec", ECS_EXEC_ACTIONS, "*"),
        # DescribeLogGroups has no resource-level permissions.
        statement("FindSessionLogGroup", "logs:DescribeLogGroups", "*"),
        statement(
            "WriteSessionLogs",
            ("logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"),
            f"{audit_log_group_arn}:*",
        ),
    ]
    if key_arn:
        statements.append(statement("DecryptSessionChannel", "kms:Decrypt", key_arn))
    return document(*statements)


def media_bucket_policy(bucket_arn: str, key_arn: str | None = None) -> Policy:
    """The app's media files: read, write and delete objects of the stack's media bucket, and list
    it (django-storages lists directories), nothing else; with the stack's KMS key, the data keys
    that SSE-KMS objects need."""
    statements = [
        statement("ListMedia", "s3:ListBucket", bucket_arn),
        statement("ReadWriteMedia", ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"), f"{bucket_arn}/*"),
    ]
    if key_arn:
        statements.append(
            statement(
                "EncryptMedia",
                ("kms:Decrypt", "kms:GenerateDataKey"),
                key_arn,
                condition={"StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}},
            )
        )
    return document(*statements)
