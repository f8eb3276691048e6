"""The preview base: what every pull request preview on it shares, set up once.

network -> database server and broker -> cluster -> image repository and the app image (built or
promoted, as in a full stack) -> front door (ALB, wildcard certificate and DNS, HTTPS listener
answering 404 by default) -> alarm topic -> the base's secrets -> the one-off `tenant` task, which
creates and drops every preview's role, database and broker keys (infra/preview/tenant.py) and
lists orphans for the janitor -> outputs, which previews read through a StackReference. No service
runs here: each preview brings its own services, database, role and broker key prefix
(infra/preview/thin.py).
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from infra import app_contract
from infra.app_contract import Role
from infra.data.broker import Broker, BrokerArgs
from infra.data.database import Database, DatabaseArgs
from infra.data.secrets import RECOVERY_WINDOW_DAYS, fingerprint, secret_name
from infra.image.image import AppImage, AppImageArgs
from infra.naming import StackContext
from infra.network.network import Network, NetworkArgs
from infra.outputs import StackOutput
from infra.preview.edge import PreviewEdge, PreviewEdgeArgs
from infra.preview.settings import PreviewBaseSettings
from infra.preview.tenant import TENANT_TASK, tenant_task_policy
from infra.services.cluster import Cluster, ClusterArgs
from infra.services.containers import STOP_TIMEOUT_SECONDS, ContainerSpec
from infra.services.fargate import FargateTask, FargateTaskArgs
from infra.services.runtime import RuntimeSettings, TaskData, task_runtime

# A secret of the base and its value's version (the tenant task's definition carries the versions).
BaseSecret = tuple[aws.secretsmanager.Secret, aws.secretsmanager.SecretVersion]


def wire_preview_base(settings: PreviewBaseSettings, stack: StackContext) -> None:
    names, aws_only, protect = stack.names, stack.opts, settings.protect
    network = Network("network", NetworkArgs(settings.network, https=True), aws_only)
    database = Database(
        "database",
        DatabaseArgs(
            settings.database,
            names.database,
            network.private_subnet_ids,
            network.database_security_group_id,
            settings.logs.retention_days,
            ephemeral=False,
            protect=protect,
            account_id=stack.cloud.account_id,
        ),
        aws_only,
    )
    broker = Broker(
        "broker",
        BrokerArgs(settings.broker, network.private_subnet_ids, network.redis_security_group_id, protect),
        aws_only,
    )
    cluster = Cluster(
        "cluster",
        ClusterArgs(names.prefix, settings.logs.container_insights, settings.logs.retention_days),
        aws_only,
    )
    image = AppImage("image", AppImageArgs(settings.image, settings.project_root, protect), aws_only)
    edge = PreviewEdge(
        "preview-lb",
        PreviewEdgeArgs(
            settings.preview.domain,
            settings.preview.hosted_zone_id,
            network.public_subnet_ids,
            network.alb_security_group_id,
            settings.web.alb_idle_timeout_seconds,
            protect,
        ),
        aws_only,
    )
    topic = aws.sns.Topic("alarms", opts=aws_only)
    if settings.alarms.email:
        aws.sns.TopicSubscription(
            "alarms-email", topic=topic.arn, protocol="email", endpoint=settings.alarms.email, opts=aws_only
        )
    admin_url, broker_url, tenant = secrets_and_tenant_task(settings, stack, image, database, broker)
    export_base(settings, network, database, broker, cluster, image, edge)
    pulumi.export(StackOutput.ADMIN_DATABASE_URL_SECRET_ARN, admin_url[0].arn)
    pulumi.export(StackOutput.BROKER_URL_SECRET_ARN, broker_url[0].arn)
    pulumi.export(StackOutput.ALARM_TOPIC_ARN, topic.arn)
    pulumi.export(StackOutput.TENANT_TASK_DEFINITION_ARN, tenant.task_definition_arn)
    pulumi.export(StackOutput.TENANT_CONTAINER_NAME, tenant.container_name)
    pulumi.export(StackOutput.TENANT_LOG_GROUP_NAME, tenant.log_group_name)


def secrets_and_tenant_task(
    settings: PreviewBaseSettings, stack: StackContext, image: AppImage, database: Database, broker: Broker
) -> tuple[BaseSecret, BaseSecret, FargateTask]:
    """The base's secrets (its admin URL, its broker URL, a Django key) and the tenant task reading them."""
    aws_only = stack.opts
    admin_url = base_secret(app_contract.ADMIN_DATABASE_URL, database.admin_url, aws_only)
    broker_url = base_secret(app_contract.REDIS_URL, broker.url, aws_only)
    secret_key = random.RandomPassword(
        "django-secret-key", length=64, special=True, override_special="!@#%^&*(-_=+)", opts=aws_only
    )
    django_key = base_secret(app_contract.DJANGO_SECRET_KEY, secret_key.result, aws_only)
    tenant = tenant_task(
        settings,
        stack,
        image,
        {
            # The tenant command connects with ADMIN_DATABASE_URL and reads the preview's own URL from its
            # secret; Django's DATABASE_URL (which the settings require) is the base's maintenance
            # database, which `preview_tenant create|drop` refuses as a preview's.
            app_contract.ADMIN_DATABASE_URL: admin_url,
            app_contract.DATABASE_URL: admin_url,
            app_contract.REDIS_URL: broker_url,
            app_contract.DJANGO_SECRET_KEY: django_key,
        },
    )
    return admin_url, broker_url, tenant


def tenant_task(
    settings: PreviewBaseSettings, stack: StackContext, image: AppImage, secrets: dict[str, BaseSecret]
) -> FargateTask:
    """The one-off task every preview's tenant runs (infra/preview/tenant.py): the base's image and
    secrets, the migrate role's container (read-only root, non-root user, awslogs); its task role
    reads previews' DATABASE_URL secrets only. Its own command lists orphans (it removes nothing)."""
    names = stack.names
    runtime = task_runtime(
        RuntimeSettings(
            settings.app,
            settings.logs.retention_days,
            settings.image.cpu_architecture,
            keep_previous_revisions=True,
        ),
        names,
        image,
        {variable: secret.arn for variable, (secret, _) in secrets.items()},
        pulumi.Output.from_input([]),  # serves no host
        stack.cloud,
        TaskData(
            "",  # no media bucket
            names.database,
            pulumi.Output.all(
                **{variable: version.version_id for variable, (_, version) in secrets.items()}
            ).apply(fingerprint),
        ),
    )
    policy = pulumi.Output.all(stack.cloud.region, stack.cloud.account_id).apply(
        lambda values: json.dumps(tenant_task_policy(names.project, values[0], values[1]))
    )
    container = ContainerSpec(
        role=Role.MIGRATE,
        command=app_contract.preview_tenant_command("orphans"),
        stop_timeout_seconds=STOP_TIMEOUT_SECONDS,
    )
    return FargateTask(
        TENANT_TASK,
        FargateTaskArgs(settings.web.size, [container], runtime, {"preview-secrets": policy}),
        stack.opts,
    )


def export_base(
    settings: PreviewBaseSettings,
    network: Network,
    database: Database,
    broker: Broker,
    cluster: Cluster,
    image: AppImage,
    edge: PreviewEdge,
) -> None:
    """What a preview reads of its base (infra/preview/thin.py PreviewBase)."""
    pulumi.export(StackOutput.VPC_ID, network.vpc_id)
    pulumi.export(StackOutput.SERVICE_SUBNET_IDS, network.service_subnet_ids)
    pulumi.export(StackOutput.APP_SECURITY_GROUP_ID, network.app_security_group_id)
    pulumi.export(StackOutput.ASSIGN_PUBLIC_IP, network.assign_public_ip)
    pulumi.export(StackOutput.CLUSTER_NAME, cluster.name)
    pulumi.export(StackOutput.CLUSTER_ARN, cluster.arn)
    pulumi.export(StackOutput.EXEC_TASK_POLICY, cluster.exec_policy)
    pulumi.export(StackOutput.EXEC_AUDIT_LOG_GROUP_NAME, cluster.exec_audit_log_group_name)
    pulumi.export(StackOutput.ALB_DNS_NAME, edge.dns_name)
    pulumi.export(StackOutput.LOAD_BALANCER_ARN_SUFFIX, edge.arn_suffix)
    pulumi.export(StackOutput.PREVIEW_LISTENER_ARN, edge.https_listener_arn)
    pulumi.export(StackOutput.PREVIEW_DOMAIN, settings.preview.domain)
    pulumi.export(StackOutput.PREVIEW_CAPACITY, settings.preview.capacity)
    pulumi.export(StackOutput.PREVIEW_CONNECTION_LIMIT, settings.preview.connection_limit)
    pulumi.export(StackOutput.DB_INSTANCE_IDENTIFIER, database.instance_identifier)
    pulumi.export(StackOutput.DB_ADDRESS, database.address)
    pulumi.export(StackOutput.DB_PORT, database.port)
    pulumi.export(StackOutput.BROKER_URL, broker.url)  # secret (Broker.url is one)
    pulumi.export(StackOutput.ECR_REPOSITORY_URL, image.repository_url)
    pulumi.export(StackOutput.ECR_REPOSITORY_NAME, image.repository_name)
    pulumi.export(StackOutput.IMAGE_REF, image.image_ref)


def base_secret(variable: str, value: pulumi.Input[str], opts: pulumi.ResourceOptions) -> BaseSecret:
    """A secret of the base's tenant task, in Secrets Manager."""
    logical_name = secret_name(variable)
    secret = aws.secretsmanager.Secret(
        logical_name,
        description=f"{variable} of the preview base",
        recovery_window_in_days=RECOVERY_WINDOW_DAYS,
        opts=opts,
    )
    version = aws.secretsmanager.SecretVersion(
        logical_name, secret_id=secret.id, secret_string=pulumi.Output.secret(value), opts=opts
    )
    return secret, version
