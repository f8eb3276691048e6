"""RDS PostgreSQL: encrypted, private, TLS enforced, and destroyable when the stack is ephemeral.

Optionally watched closely (Performance Insights, Enhanced Monitoring) and encrypted with the stack's
own key. A stack pointed at a point-in-time restore of its database (`dbRestoredIdentifier`) adopts
that instance under a logical name of its own: the engine imports it (and brings it in line with
these inputs), and removes the instance it replaces once everything else has moved over.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from infra import iam
from infra.data.config import DatabaseConfig
from infra.data.urls import database_url

# PostgreSQL's maintenance database, on every server: where an admin connects to create others.
MAINTENANCE_DATABASE = "postgres"

DATABASE_NAME = "app"
# Not "postgres": a custom administrator name (Security Hub RDS.25).
DATABASE_USER = "app"
CA_CERTIFICATE = "rds-ca-rsa2048-g1"
# The logs RDS exports to CloudWatch, each to /aws/rds/instance/<identifier>/<log>.
EXPORTED_LOGS = ("postgresql", "upgrade")
# The AWS managed policy that lets RDS publish Enhanced Monitoring metrics to CloudWatch Logs.
ENHANCED_MONITORING_POLICY_ARN = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
# Performance Insights' free retention (the standard mode of CloudWatch Database Insights).
PERFORMANCE_INSIGHTS_RETENTION_DAYS = 7


@dataclass(frozen=True)
class DatabaseArgs:
    config: DatabaseConfig
    identifier: str  # the stack's own instance's fixed name (StackNames.database)
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    log_retention_days: int  # of the exported PostgreSQL logs
    ephemeral: bool  # no final snapshot, automated backups deleted with the instance
    protect: bool  # Pulumi `protect` on the instance
    key_arn: pulumi.Input[str] | None = None  # the stack's KMS key; None: the AWS-managed aws/rds key
    account_id: pulumi.Input[str] = ""  # for the Enhanced Monitoring role's trust policy

    @property
    def active_identifier(self) -> str:
        """The instance the stack uses: its own, or the restore it was pointed at."""
        return self.config.restored_identifier or self.identifier


def exported_log_group_name(identifier: str, log: str) -> str:
    return f"/aws/rds/instance/{identifier}/{log}"


def instance_logical_name(name: str, args: DatabaseArgs) -> str:
    """`<name>-postgres`, or `<name>-postgres-r<time>` for an adopted restore: a new resource, so the
    engine imports it instead of replacing the stack's own instance in place."""
    restored = args.config.restored_identifier
    return f"{name}-postgres" + (restored.removeprefix(args.identifier) if restored else "")


def monitoring_trust_policy(account_id: str) -> iam.Policy:
    return iam.document(
        iam.statement(
            "RdsMonitoringOfThisAccount",
            "sts:AssumeRole",
            principal={"Service": "monitoring.rds.amazonaws.com"},
            condition={"StringEquals": {"aws:SourceAccount": account_id}},
        )
    )


class Database(pulumi.ComponentResource):
    url: pulumi.Output[str]  # secret: DATABASE_URL
    # secret: the master user's URL to the `postgres` maintenance database (a preview base's
    # ADMIN_DATABASE_URL, which creates and drops the previews' roles and databases)
    admin_url: pulumi.Output[str]
    address: pulumi.Output[str]
    port: pulumi.Output[int]
    instance_identifier: pulumi.Output[str]

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("djcelery:index:Database", name, None, opts)
        self._name = name
        # Letters and digits only: nothing to escape anywhere the password travels.
        password = random.RandomPassword(
            f"{name}-password", length=40, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        instance = self._instance(args, password)
        self.address = instance.address
        self.port = instance.port
        self.instance_identifier = instance.identifier

        def url_of(database: str) -> pulumi.Output[str]:
            return pulumi.Output.all(password.result, instance.address, instance.port).apply(
                lambda values: database_url(DATABASE_USER, values[0], values[1], int(values[2]), database)
            )

        self.url = pulumi.Output.secret(url_of(DATABASE_NAME))
        self.admin_url = pulumi.Output.secret(url_of(MAINTENANCE_DATABASE))
        self.register_outputs({"address": self.address, "instance_identifier": self.instance_identifier})

    def _instance(self, args: DatabaseArgs, password: random.RandomPassword) -> aws.rds.Instance:
        name, config, child = self._name, args.config, pulumi.ResourceOptions(parent=self)
        subnets = aws.rds.SubnetGroup(f"{name}-subnets", subnet_ids=list(args.subnet_ids), opts=child)
        parameters = aws.rds.ParameterGroup(
            f"{name}-parameters",
            family=config.parameter_group_family,
            description="PostgreSQL for the app: TLS required",
            parameters=[aws.rds.ParameterGroupParameterArgs(name="rds.force_ssl", value="1")],
            opts=child,
        )
        logical_name = instance_logical_name(name, args)
        # A final snapshot name must be unique in the account, also after a destroy and re-create.
        snapshot_suffix = random.RandomId(f"{name}-final-snapshot", byte_length=4, opts=child)
        final_snapshot_prefix = logical_name.replace("-postgres", "")
        restored = args.config.restored_identifier
        return aws.rds.Instance(
            logical_name,
            identifier=args.active_identifier,
            engine="postgres",
            engine_version=config.engine_version,
            instance_class=config.instance_class,
            allocated_storage=config.allocated_storage_gib,
            storage_type="gp3",
            storage_encrypted=True,
            kms_key_id=args.key_arn,
            publicly_accessible=False,
            db_subnet_group_name=subnets.name,
            vpc_security_group_ids=[args.security_group_id],
            parameter_group_name=parameters.name,
            db_name=DATABASE_NAME,
            username=DATABASE_USER,
            password=password.result,
            auto_minor_version_upgrade=True,
            backup_retention_period=config.backup_retention_days,
            copy_tags_to_snapshot=True,
            multi_az=config.multi_az,
            deletion_protection=config.deletion_protection,
            skip_final_snapshot=args.ephemeral,
            final_snapshot_identifier=None
            if args.ephemeral
            else snapshot_suffix.hex.apply(lambda suffix: f"{final_snapshot_prefix}-final-{suffix}"),
            delete_automated_backups=args.ephemeral,
            enabled_cloudwatch_logs_exports=list(EXPORTED_LOGS),
            iam_database_authentication_enabled=True,
            ca_cert_identifier=CA_CERTIFICATE,
            **self._insight(args),
            # A fixed identifier cannot exist twice: a replacement deletes the old instance first
            # (and `protect` stops a replacement of a protected one at preview). A restore is
            # imported: it exists already, made by `python -m infra.ops restore`.
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=self._log_groups(args),
                protect=args.protect,
                delete_before_replace=True,
                import_=restored or None,
            ),
        )

    def _insight(self, args: DatabaseArgs) -> dict[str, Any]:
        """Performance Insights (encrypted with the stack's key) and Enhanced Monitoring, when on."""
        config, inputs = args.config, dict[str, Any]()
        if config.performance_insights:
            inputs.update(
                performance_insights_enabled=True,
                performance_insights_retention_period=PERFORMANCE_INSIGHTS_RETENTION_DAYS,
                performance_insights_kms_key_id=args.key_arn,
            )
        if config.monitoring_interval_seconds:
            role = aws.iam.Role(
                f"{self._name}-monitoring-role",
                assume_role_policy=pulumi.Output.from_input(args.account_id).apply(
                    lambda account: json.dumps(monitoring_trust_policy(account))
                ),
                description="RDS publishes Enhanced Monitoring metrics of the database",
                opts=pulumi.ResourceOptions(parent=self),
            )
            attachment = aws.iam.RolePolicyAttachment(
                f"{self._name}-monitoring",
                role=role.name,
                policy_arn=ENHANCED_MONITORING_POLICY_ARN,
                opts=pulumi.ResourceOptions(parent=self),
            )
            # The ARN once the role may publish: RDS checks the role when it turns monitoring on.
            role_arn = pulumi.Output.all(role.arn, attachment.id).apply(lambda values: str(values[0]))
            inputs.update(
                monitoring_interval=config.monitoring_interval_seconds, monitoring_role_arn=role_arn
            )
        return inputs

    def _log_groups(self, args: DatabaseArgs) -> list[aws.cloudwatch.LogGroup]:
        """RDS creates the log groups it exports to, kept forever and left behind by a destroy,
        unless they exist first: these are the program's, with the stack's retention (and key).
        An adopted restore exports to groups of its own name, which are new resources too."""
        suffix = instance_logical_name(self._name, args).removeprefix(f"{self._name}-postgres")
        return [
            aws.cloudwatch.LogGroup(
                f"{self._name}{suffix}-{log}-logs",
                name=exported_log_group_name(args.active_identifier, log),
                retention_in_days=args.log_retention_days,
                kms_key_id=args.key_arn,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for log in EXPORTED_LOGS
        ]
