"""One customer-managed KMS key for the stack's data, rotated every year.

The key policy keeps the account in charge of the key (so IAM policies grant its use: the deploying
principal's for RDS, ElastiCache, Secrets Manager, S3 and ECR, which use it on that principal's
behalf through grants; the execution roles' to read the secrets; the task roles' for media files
and ECS Exec) and lets three services use it as themselves: CloudWatch Logs for this stack's log
groups only (an encryption-context condition names them), CloudWatch alarms to publish to the
encrypted alarm topic for this account only, and EventBridge to deliver deployment events to that
topic and its dead-letter queue. EventBridge gets no `aws:Source*` condition: KMS sees none for an
EventBridge delivery to an encrypted topic ("Adding the aws:SourceAccount and aws:SourceArn to a AWS
KMS policy is not supported for EventBridge-to-encrypted topics", SNS developer guide, key
management, compatibility with AWS services), so such a condition would drop every deployment mail.

A key scheduled for deletion makes everything it encrypted unreadable, final snapshots included,
so a stack that keeps a final snapshot (every stack but an ephemeral one) leaves its key behind on
`pulumi destroy` (retainOnDelete); an ephemeral stack's key is scheduled for deletion after the
shortest window AWS allows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import iam
from infra.naming import Cloud, StackNames

# WAF's CloudWatch Logs destinations must be named aws-waf-logs-... (WAF developer guide, logging).
WAF_LOG_GROUP_PREFIX = "aws-waf-logs-"

# KMS accepts 7 to 30 days; 30 (the longest) where the key outlives the stack, 7 for ephemeral stacks.
DELETION_WINDOW_DAYS = 30
EPHEMERAL_DELETION_WINDOW_DAYS = 7
KEY_USE_ACTIONS = ("kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*")
# CloudWatch alarms and EventBridge publish to an encrypted SNS topic with these.
TOPIC_PUBLISHER_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey*")
EVENTS = "events.amazonaws.com"


def log_group_arn_patterns(region: str, account_id: str, log_group_names: Sequence[str]) -> list[str]:
    """`kms:EncryptionContext:aws:logs:arn` values of the stack's log groups (names may end in *)."""
    return [f"arn:aws:logs:{region}:{account_id}:log-group:{name}" for name in log_group_names]


def key_policy(region: str, account_id: str, log_group_names: Sequence[str]) -> iam.Policy:
    account = {"AWS": f"arn:aws:iam::{account_id}:root"}
    this_account = {"StringEquals": {"aws:SourceAccount": account_id}}
    return iam.document(
        # The AWS default: the account administers the key and IAM policies grant its use.
        iam.statement("AccountAdministersKey", "kms:*", "*", principal=account),
        iam.statement(
            "LogsEncryptStackLogGroups",
            KEY_USE_ACTIONS,
            "*",
            principal={"Service": f"logs.{region}.amazonaws.com"},
            condition={
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": log_group_arn_patterns(
                        region, account_id, log_group_names
                    )
                }
            },
        ),
        iam.statement(
            "AlarmsPublishToTopic",
            TOPIC_PUBLISHER_ACTIONS,
            "*",
            principal={"Service": "cloudwatch.amazonaws.com"},
            condition=this_account,
        ),
        # The topic, and the deployment events' dead-letter queue.
        iam.statement("EventsPublishToTopic", TOPIC_PUBLISHER_ACTIONS, "*", principal={"Service": EVENTS}),
    )


@dataclass(frozen=True)
class DataKeyArgs:
    alias: str  # alias/<stack prefix>
    region: pulumi.Input[str]
    account_id: pulumi.Input[str]
    log_group_names: Sequence[str]  # the stack's log groups (may end in *), which CloudWatch Logs encrypts
    ephemeral: bool  # scheduled for deletion with the stack; otherwise left behind by a destroy
    protect: bool  # Pulumi `protect` (Security Hub KMS.3: a key must not be scheduled for deletion)

    @classmethod
    def for_stack(cls, names: StackNames, cloud: Cloud, ephemeral: bool, protect: bool) -> DataKeyArgs:
        # The log groups of the tasks, the ECS Exec sessions, the database (restores included) and
        # the firewall (infra/web/firewall.py).
        log_groups = [
            f"/ecs/{names.prefix}/*",
            f"/aws/rds/instance/{names.database}*",
            f"{WAF_LOG_GROUP_PREFIX}{names.prefix}",
        ]
        return cls(f"alias/{names.prefix}", cloud.region, cloud.account_id, log_groups, ephemeral, protect)


class DataKey(pulumi.ComponentResource):
    arn: pulumi.Output[str]

    def __init__(self, name: str, args: DataKeyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("djcelery:index:DataKey", name, None, opts)
        policy = pulumi.Output.all(args.region, args.account_id).apply(
            lambda values: json.dumps(key_policy(values[0], values[1], args.log_group_names))
        )
        key = aws.kms.Key(
            f"{name}-key",
            description=f"Data of the {args.alias.removeprefix('alias/')} stack",
            enable_key_rotation=True,
            deletion_window_in_days=EPHEMERAL_DELETION_WINDOW_DAYS
            if args.ephemeral
            else DELETION_WINDOW_DAYS,
            policy=policy,
            opts=pulumi.ResourceOptions(
                parent=self, protect=args.protect, retain_on_delete=not args.ephemeral
            ),
        )
        aws.kms.Alias(
            f"{name}-alias",
            name=args.alias,
            target_key_id=key.key_id,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.arn = key.arn
        self.register_outputs({"arn": self.arn})
