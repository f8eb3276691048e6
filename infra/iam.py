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
    principal: str | Mapping[str, str] | None = None,
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


def execution_role_policy(secret_arns: Sequence[str], repository_arn: str, log_group_arn: str) -> Policy:
    return document(
        statement("ReadTaskSecrets", "secretsmanager:GetSecretValue", sorted(secret_arns)),
        # The registry token is account-wide: this action has no resource-level permissions.
        statement("EcrLogin", "ecr:GetAuthorizationToken", "*"),
        statement("PullAppImage", ECR_PULL_ACTIONS, repository_arn),
        statement("WriteTaskLogs", LOG_WRITE_ACTIONS, f"{log_group_arn}:log-stream:*"),
    )


def ecs_exec_policy(session_log_group_arn: str) -> Policy:
    """ECS Exec sessions, logged to the task's own log group (the cluster's DEFAULT logging: without
    these log permissions the agent cannot record a session and the session fails to start)."""
    return document(
        statement("EcsExec", ECS_EXEC_ACTIONS, "*"),
        # DescribeLogGroups has no resource-level permissions.
        statement("FindSessionLogGroup", "logs:DescribeLogGroups", "*"),
        statement(
            "WriteSessionLogs",
            ("logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"),
            f"{session_log_group_arn}:*",
        ),
    )
