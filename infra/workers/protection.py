"""What a worker may call to protect itself from scale-in while it runs tasks.

The worker asks the ECS agent in its task (app/core/task_protection.py); the agent calls
UpdateTaskProtection with the task role's credentials. The worker never reads the state back
(GET would need GetTaskProtection), so the role gets exactly the one action, on the tasks of the
stack's cluster.
"""

from __future__ import annotations

import json

import pulumi

from infra import iam
from infra.naming import Cloud, StackNames

PROTECTION_ACTION = "ecs:UpdateTaskProtection"


def task_protection_policy_document(
    cluster_name: str, region: str, account_id: str, partition: str = "aws"
) -> iam.Policy:
    return iam.document(
        iam.statement(
            "ProtectOwnTaskWhileBusy",
            PROTECTION_ACTION,
            f"arn:{partition}:ecs:{region}:{account_id}:task/{cluster_name}/*",
        )
    )


def worker_task_policy(names: StackNames, cloud: Cloud) -> pulumi.Output[str]:
    """The worker task role's protection policy, once the region and the account are known."""
    return pulumi.Output.all(cloud.region, cloud.account_id).apply(
        lambda values: json.dumps(task_protection_policy_document(names.cluster, *values))
    )
