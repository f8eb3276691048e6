"""IAM policy documents for ECS tasks, as plain JSON-ready dicts.

Each task has two roles: the execution role, which ECS itself uses to pull the image, write the
container logs and read the task's secrets at start, and the task role, which the application's
own AWS calls use. Neither grants a wildcard action on a wildcard resource.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Policy = dict[str, Any]

# ECS Exec: the agent in the container opens its session channels through these. They support no
# resource-level permissions, hence Resource "*".
ECS_EXEC_ACTIONS = (
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
)
ECR_PULL_ACTIONS = ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")


def _document(statements: Sequence[Policy]) -> Policy:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def ecs_tasks_trust_policy(account_id: str) -> Policy:
    """Only ECS tasks of this account may assume the role (confused-deputy guard)."""
    return _document(
        [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            }
        ]
    )


def execution_role_policy(secret_arns: Sequence[str], repository_arn: str, log_group_arn: str) -> Policy:
    return _document(
        [
            {
                "Sid": "ReadTaskSecrets",
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": sorted(secret_arns),
            },
            # The registry token is account-wide: this action has no resource-level permissions.
            {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {
                "Sid": "PullAppImage",
                "Effect": "Allow",
                "Action": list(ECR_PULL_ACTIONS),
                "Resource": repository_arn,
            },
            {
                "Sid": "WriteTaskLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": f"{log_group_arn}:log-stream:*",
            },
        ]
    )


def ecs_exec_policy() -> Policy:
    return _document(
        [
            {"Sid": "EcsExec", "Effect": "Allow", "Action": list(ECS_EXEC_ACTIONS), "Resource": "*"},
        ]
    )
