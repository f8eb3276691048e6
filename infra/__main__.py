"""The Pulumi program: Django web, Celery workers and Celery Beat on ECS Fargate.

It reads like the architecture: config -> network -> data stores and secrets -> image -> cluster and
load balancer -> observability -> release (migrations) -> services (web, worker pools with their
autoscaling, Beat with the queue-metrics publisher) -> outputs. Every ECS task launch (the release
and each service) waits for everything its containers need at start: routes out, data stores,
secret values, its roles' policies and the cluster's capacity providers.
"""

import pulumi
import pulumi_aws as aws

from infra.config.stack import PROJECT_ROOT, load_stack_config
from infra.data.broker import Broker, BrokerArgs
from infra.data.database import Database, DatabaseArgs
from infra.data.secrets import AppSecrets, AppSecretsArgs
from infra.encryption.key import DataKey, DataKeyArgs
from infra.image.image import AppImage, AppImageArgs
from infra.naming import Cloud, StackNames
from infra.network.network import Network, NetworkArgs
from infra.observability.observability import Observability, ObservabilityArgs, WatchedResources
from infra.release.release import Release, release_args
from infra.services import containers, roles
from infra.services.app_services import AppServices, AppServicesArgs
from infra.services.cluster import Cluster, ClusterArgs
from infra.services.fargate import FargateTask, FargateTaskArgs, Placement
from infra.storage.bucket import MediaBucket, MediaBucketArgs
from infra.web.load_balancer import WebLoadBalancer, WebLoadBalancerArgs

config = load_stack_config()
names = StackNames(pulumi.get_project(), pulumi.get_stack())
provider = aws.Provider(
    "aws", region=aws.config.region, default_tags=aws.ProviderDefaultTagsArgs(tags=names.tags)
)
aws_only = pulumi.ResourceOptions(providers={"aws": provider})
invoke = pulumi.InvokeOutputOptions(provider=provider)
cloud = Cloud(
    aws.get_region_output(opts=invoke).region, aws.get_caller_identity_output(opts=invoke).account_id
)
protect = config.protect_resources

# --- The stack's KMS key (optional) and the media bucket -----------------------------------------
key = (
    DataKey("data-key", DataKeyArgs.for_stack(names, cloud, config.ephemeral, protect), aws_only)
    if config.encryption.customer_managed_key
    else None
)
key_arn = key.arn if key else None
media = MediaBucket("media", MediaBucketArgs(config.media, names.prefix, protect, key_arn), aws_only)

# --- Network, data stores, secrets, image ---------------------------------------------------------
network = Network("network", NetworkArgs(config.network, https=config.web.https), aws_only)
database = Database(
    "database",
    DatabaseArgs(
        config.database,
        names.database,
        network.private_subnet_ids,
        network.database_security_group_id,
        config.logs.retention_days,
        ephemeral=config.ephemeral,
        protect=protect,
        key_arn=key_arn,
        account_id=cloud.account_id,
    ),
    aws_only,
)
broker = Broker(
    "broker",
    BrokerArgs(config.broker, network.private_subnet_ids, network.redis_security_group_id, protect, key_arn),
    aws_only,
)
secrets = AppSecrets(
    "secrets",
    AppSecretsArgs(database.url, broker.url, config.app.email_url, config.ephemeral, key_arn),
    aws_only,
)
image = AppImage("image", AppImageArgs(config.image, PROJECT_ROOT, protect, key_arn), aws_only)

# --- Cluster and load balancer ----------------------------------------------------------------------
cluster = Cluster(
    "cluster",
    ClusterArgs(names.prefix, config.logs.container_insights, config.logs.retention_days, key_arn),
    aws_only,
)
load_balancer = WebLoadBalancer(
    "web-lb",
    WebLoadBalancerArgs(
        config.web,
        network.vpc_id,
        network.public_subnet_ids,
        network.alb_security_group_id,
        config.logs.retention_days,
        protect=protect,
    ),
    aws_only,
)
host_names = load_balancer.dns_name.apply(
    lambda dns: [name for name in (config.web.domain_name, dns) if name]
)
web_url = host_names.apply(lambda hosts: f"{'https' if config.web.https else 'http'}://{hosts[0]}")

# --- Observability: one dashboard, and the alarms people act on, on one topic -----------------------
watched = WatchedResources(
    load_balancer.arn_suffix,
    load_balancer.target_group_arn_suffix,
    database.instance_identifier,
    broker.member_cluster_ids,
    load_balancer.web_acl_name,
)
observability = Observability(
    "observability",
    ObservabilityArgs.for_stack(config, names, cloud, cluster.arn, watched, key_arn),
    aws_only,
)

# --- Release: migrations run once per new image or migrate task definition ------------------------
task_data = roles.TaskData(
    media.bucket_name,
    config.database.restored_identifier or names.database,
    {"exec": cluster.exec_policy, "media": media.task_policy},
    key_arn,
)
runtime = roles.task_runtime(config, names, image, secrets.arns, host_names, cloud, task_data)
placement = Placement(
    cluster.arn, network.service_subnet_ids, [network.app_security_group_id], network.assign_public_ip
)
# A task started before these exist fails with ResourceInitializationError (no route to pull the
# image, no secret value, no database): depending on a component waits for all of its children.
task_prerequisites = [network, database, broker, secrets, cluster]
migrate = FargateTask(
    "migrate", FargateTaskArgs(config.web.size, [containers.migrate_container()], runtime), aws_only
)
release = Release(
    "release",
    release_args(config, placement, migrate, image, cloud.region, [*task_prerequisites, migrate]),
    aws_only,
)

# --- Services: web, one per worker pool with its autoscaling, Beat with the publisher -------------
services = AppServices(
    "services",
    AppServicesArgs(
        config,
        names,
        cloud,
        runtime,
        placement,
        load_balancer.target_group_arn,
        load_balancer.edge,
        load_balancer.request_count_label,
        observability.topic_arn,
        depends_on=[*task_prerequisites, release],
    ),
    aws_only,
)
web = services.web

# --- Outputs ----------------------------------------------------------------------------------------
pulumi.export("webUrl", web_url)
pulumi.export("albDnsName", load_balancer.dns_name)
pulumi.export("clusterName", cluster.name)
pulumi.export("clusterArn", cluster.arn)
pulumi.export("webServiceName", web.service_name)
pulumi.export("workerServiceNames", {pool: worker.service_name for pool, worker in services.workers.items()})
pulumi.export("beatServiceName", services.scheduler.service_name if config.beat.enabled else None)
pulumi.export("ecrRepositoryUrl", image.repository_url)
pulumi.export("imageRef", image.image_ref)
pulumi.export("release", release.record)  # the image, its tasks and migrations, pools and Beat
pulumi.export(
    "logGroupNames",
    {
        "migrate": migrate.log_group_name,
        **{key: service.task.log_group_name for key, service in services.by_key.items()},
    },
)
pulumi.export("secretArns", secrets.arns)
pulumi.export("serviceSubnetIds", network.service_subnet_ids)
pulumi.export("appSecurityGroupId", network.app_security_group_id)
pulumi.export("assignPublicIp", network.assign_public_ip)
pulumi.export("webTaskDefinitionArn", web.task.task_definition_arn)
pulumi.export("migrateTaskDefinitionArn", migrate.task_definition_arn)
pulumi.export("webContainerName", web.task.container_name)
pulumi.export("queueMetricsNamespace", names.metric_namespace)
pulumi.export("alarmTopicArn", observability.topic_arn)
pulumi.export("dashboardName", observability.dashboard_name)
pulumi.export("dbInstanceIdentifier", database.instance_identifier)
pulumi.export("mediaBucketName", media.bucket_name)
pulumi.export("execAuditLogGroupName", cluster.exec_audit_log_group_name)
pulumi.export("dataKeyArn", key_arn)
