"""Deployment events people hear about, and who may publish to the alarm topic."""

from __future__ import annotations

import json
from collections.abc import Sequence

from infra import iam

# Deployment events EventBridge could not deliver stay this long in their dead-letter queue (the
# SQS maximum, MessageRetentionPeriod 1,209,600 seconds).
DEAD_LETTER_RETENTION_SECONDS = 14 * 24 * 60 * 60
# ECS reports a failed deployment, and a circuit-breaker rollback as a new deployment whose
# reason starts with this text.
ROLLBACK_REASON_PREFIX = "ECS deployment circuit breaker: rolling back"


def service_arn(cluster_arn: str, service_name: str) -> str:
    """A service's ARN in the long format ECS uses: arn:...:service/<cluster>/<service>."""
    prefix, cluster = cluster_arn.split(":cluster/", 1)
    return f"{prefix}:service/{cluster}/{service_name}"


def deployment_events_pattern(service_arns: Sequence[str]) -> str:
    """EventBridge pattern: failed deployments and circuit-breaker rollbacks of these services."""
    return json.dumps(
        {
            "source": ["aws.ecs"],
            "detail-type": ["ECS Deployment State Change"],
            "resources": sorted(service_arns),
            "detail": {
                "$or": [
                    {"eventName": ["SERVICE_DEPLOYMENT_FAILED"]},
                    {
                        "eventName": ["SERVICE_DEPLOYMENT_IN_PROGRESS"],
                        "reason": [{"prefix": ROLLBACK_REASON_PREFIX}],
                    },
                ]
            },
        }
    )


# The e-mail people receive for a deployment event, filled in by EventBridge.
DEPLOYMENT_MESSAGE_PATHS = {
    "service": "$.resources[0]",
    "event": "$.detail.eventName",
    "reason": "$.detail.reason",
    "time": "$.time",
}
DEPLOYMENT_MESSAGE_TEMPLATE = '"<time> <service>: <event>. <reason>"'


def alarm_topic_policy(topic_arn: str, account_id: str, region: str, event_rule_arn: str) -> str:
    """CloudWatch alarms of this account and the deployment-event rule may publish; no one else."""
    partition = topic_arn.split(":")[1]
    alarm_arns = f"arn:{partition}:cloudwatch:{region}:{account_id}:alarm:*"
    return json.dumps(
        iam.document(
            iam.statement(
                "AlarmsPublish",
                "sns:Publish",
                topic_arn,
                principal={"Service": "cloudwatch.amazonaws.com"},
                condition={
                    "StringEquals": {"aws:SourceAccount": account_id},
                    "ArnLike": {"aws:SourceArn": alarm_arns},
                },
            ),
            iam.statement(
                "DeploymentEventsPublish",
                "sns:Publish",
                topic_arn,
                principal={"Service": "events.amazonaws.com"},
                condition={"ArnEquals": {"aws:SourceArn": event_rule_arn}},
            ),
        )
    )


def dead_letter_queue_policy(queue_arn: str, rule_arn: str) -> str:
    """EventBridge may put the events of one rule it failed to deliver, and nothing else may write
    (EventBridge user guide, "Granting permissions to the dead-letter queue")."""
    return json.dumps(
        iam.document(
            iam.statement(
                "DeploymentRuleDeadLetters",
                "sqs:SendMessage",
                queue_arn,
                principal={"Service": "events.amazonaws.com"},
                condition={"ArnEquals": {"aws:SourceArn": rule_arn}},
            )
        )
    )
