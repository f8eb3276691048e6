"""RDS PostgreSQL: encrypted, private, TLS enforced, and destroyable when the stack is ephemeral."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from infra.data.config import DatabaseConfig
from infra.data.urls import database_url

DATABASE_NAME = "app"
# Not "postgres": a custom administrator name (Security Hub RDS.25).
DATABASE_USER = "app"
CA_CERTIFICATE = "rds-ca-rsa2048-g1"
# The logs RDS exports to CloudWatch, each to /aws/rds/instance/<identifier>/<log>.
EXPORTED_LOGS = ("postgresql", "upgrade")


@dataclass(frozen=True)
class DatabaseArgs:
    config: DatabaseConfig
    identifier: str  # the instance's fixed name (StackNames.database)
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    log_retention_days: int  # of the exported PostgreSQL logs
    ephemeral: bool  # no final snapshot, automated backups deleted with the instance
    protect: bool  # Pulumi `protect` on the instance


def exported_log_group_name(identifier: str, log: str) -> str:
    return f"/aws/rds/instance/{identifier}/{log}"


class Database(pulumi.ComponentResource):
    url: pulumi.Output[str]  # secret: DATABASE_URL
    address: pulumi.Output[str]
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
        self.instance_identifier = instance.identifier
        self.url = pulumi.Output.secret(
            pulumi.Output.all(password.result, instance.address, instance.port).apply(
                lambda values: database_url(
                    DATABASE_USER, values[0], values[1], int(values[2]), DATABASE_NAME
                )
            )
        )
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
        # A final snapshot name must be unique in the account, also after a destroy and re-create.
        snapshot_suffix = random.RandomId(f"{name}-final-snapshot", byte_length=4, opts=child)
        return aws.rds.Instance(
            f"{name}-postgres",
            identifier=args.identifier,
            engine="postgres",
            engine_version=config.engine_version,
            instance_class=config.instance_class,
            allocated_storage=config.allocated_storage_gib,
            storage_type="gp3",
            storage_encrypted=True,
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
            else snapshot_suffix.hex.apply(lambda suffix: f"{name}-final-{suffix}"),
            delete_automated_backups=args.ephemeral,
            enabled_cloudwatch_logs_exports=list(EXPORTED_LOGS),
            iam_database_authentication_enabled=True,
            ca_cert_identifier=CA_CERTIFICATE,
            # A fixed identifier cannot exist twice: a replacement deletes the old instance first
            # (and `protect` stops a replacement of a protected one at preview).
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=self._log_groups(args),
                protect=args.protect,
                delete_before_replace=True,
            ),
        )

    def _log_groups(self, args: DatabaseArgs) -> list[aws.cloudwatch.LogGroup]:
        """RDS creates the log groups it exports to, kept forever and left behind by a destroy,
        unless they exist first: these are the program's, with the stack's retention."""
        return [
            aws.cloudwatch.LogGroup(
                f"{self._name}-{log}-logs",
                name=exported_log_group_name(args.identifier, log),
                retention_in_days=args.log_retention_days,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for log in EXPORTED_LOGS
        ]
