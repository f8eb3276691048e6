"""The Pulumi program: Django web, Celery workers and Celery Beat on ECS Fargate.

It reads like the architecture: config -> network -> data stores and secrets -> image -> cluster and
load balancer -> release (migrations) -> services (web, workers, Beat with the queue-metrics
publisher) -> observability -> queue autoscaling -> outputs. Every ECS task launch (the release and
each service) waits for everything its containers need at start: network routes, data stores,
secret values, its roles' policies and the cluster's capacity providers.
"""

import json

import pulumi
import pulumi_aws as aws

from infra.autoscaling.autoscaling import WorkerAutoscaling, WorkerAutoscalingArgs
from infra.autoscaling.publisher import publisher_policy_document, queue_metrics_publisher
from infra.config.stack import PROJECT_ROOT, load_stack_config
from infra.data.broker import Broker, BrokerArgs
from infra.data.database import Database, DatabaseArgs
from infra.data.secrets import AppSecrets, AppSecretsArgs
from infra.image.image import AppImage, AppImageArgs
from infra.naming import StackNames
from infra.network.network import Network, NetworkArgs
from infra.observability.observability import Observability, ObservabilityArgs
from infra.release.release import Release, ReleaseArgs, RolloutCheck, RolloutCheckArgs
from infra.services import containers, roles
from infra.services.cluster import Cluster, ClusterArgs
from infra.services.fargate import (
    FargateService,
    FargateTask,
    FargateTaskArgs,
    Placement,
    TaskRuntime,
)
from infra.web.load_balancer import WebLoadBalancer, WebLoadBalancerArgs
from queuemetrics import schema

WEB_ROLLOUT_TIMEOUT_SECONDS = 10 * 60

config = load_stack_config()
names = StackNames(pulumi.get_project(), pulumi.get_stack())
provider = aws.Provider(
    "aws", region=aws.config.region, default_tags=aws.ProviderDefaultTagsArgs(tags=names.tags)
)
aws_only = pulumi.ResourceOptions(providers={"aws": provider})
invoke = pulumi.InvokeOutputOptions(provider=provider)
region = aws.get_region_output(opts=invoke).region
account_id = aws.get_caller_identity_output(opts=invoke).account_id

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
        protect=config.protect_resources,
    ),
    aws_only,
)
broker = Broker(
    "broker",
    BrokerArgs(
        config.broker,
        network.private_subnet_ids,
        network.redis_security_group_id,
        protect=config.protect_resources,
    ),
    aws_only,
)
secrets = AppSecrets(
    "secrets", AppSecretsArgs(database.url, broker.url, config.app.email_url, config.ephemeral), aws_only
)
image = AppImage(
    "image", AppImageArgs(config.image, PROJECT_ROOT, protect=config.protect_resources), aws_only
)

# --- Cluster and load balancer ----------------------------------------------------------------------
cluster = Cluster("cluster", ClusterArgs(names.prefix, config.logs.container_insights), aws_only)
load_balancer = WebLoadBalancer(
    "web-lb",
    WebLoadBalancerArgs(
        config.web,
        network.vpc_id,
        network.public_subnet_ids,
        network.alb_security_group_id,
        config.logs.retention_days,
        protect=config.protect_resources,
    ),
    aws_only,
)
host_names = load_balancer.dns_name.apply(
    lambda dns_name: [name for name in (config.web.domain_name, dns_name) if name]
)
web_url = host_names.apply(lambda names: f"{'https' if config.web.https else 'http'}://{names[0]}")

# --- What every task shares, and where it runs ------------------------------------------------------
runtime = TaskRuntime(
    containers=pulumi.Output.all(
        image.image_ref, host_names, region, pulumi.Output.all(**secrets.arns)
    ).apply(
        lambda values: containers.ContainerContext(
            image=values[0],
            environment=containers.shared_environment(config, values[1], values[2]),
            secret_arns=values[3],
            region=values[2],
        )
    ),
    secret_arns=list(secrets.arns.values()),
    repository_arn=image.repository_arn,
    account_id=account_id,
    names=names,
    log_retention_days=config.logs.retention_days,
    cpu_architecture=config.image.cpu_architecture,
    keep_previous_revisions=not config.ephemeral,
)
placement = Placement(
    cluster_arn=cluster.arn,
    subnet_ids=network.service_subnet_ids,
    security_group_ids=[network.app_security_group_id],
    assign_public_ip=network.assign_public_ip,
)
# A task started before these exist fails with ResourceInitializationError (no route to pull the
# image, no secret value, no database): depending on a component waits for all of its children.
task_prerequisites = [network, database, broker, secrets, cluster]

# --- Release: migrations run once per new image or migrate task definition ------------------------
migrate = FargateTask(
    "migrate", FargateTaskArgs(config.web.size, [containers.migrate_container()], runtime), aws_only
)
release = Release(
    "release",
    ReleaseArgs(
        cluster=cluster.arn,
        task_definition_arn=migrate.task_definition_arn,
        image=image.image_ref,
        subnet_ids=network.service_subnet_ids,
        security_group_ids=[network.app_security_group_id],
        assign_public_ip=network.assign_public_ip,
        log_group_name=migrate.log_group_name,
        region=region,
        timeout_seconds=config.release.migrate_timeout_seconds,
        depends_on=[*task_prerequisites, migrate],
    ),
    aws_only,
)

# --- Services: web, one per worker pool, and Beat with the queue-metrics publisher ----------------
after_release = [*task_prerequisites, release]
web = FargateService(
    "web",
    roles.web_service(
        config, runtime, placement, load_balancer.target_group_arn, [*after_release, *load_balancer.listeners]
    ),
    aws_only,
)
# `pulumi up` fails if ECS's circuit breaker rolled the web deployment back.
RolloutCheck(
    "web-rollout",
    RolloutCheckArgs(
        cluster.arn, web.service_name, web.task.task_definition_arn, region, WEB_ROLLOUT_TIMEOUT_SECONDS, web
    ),
    aws_only,
)
workers = {
    pool.name: FargateService(
        roles.worker_service_key(pool),
        roles.worker_service(config, pool, runtime, placement, after_release),
        aws_only,
    )
    for pool in config.workers.pools
}
metric_namespace = schema.metric_namespace(names.project, names.stack)
publisher = queue_metrics_publisher(
    config.workers.pools,
    {pool.name: names.service(roles.worker_service_key(pool)) for pool in config.workers.pools},
    metric_namespace,
    config.scaling.queue_metrics_interval_seconds,
    cluster_name=names.prefix,
)
publisher_policy = pulumi.Output.all(region, account_id).apply(
    lambda values: json.dumps(publisher_policy_document(metric_namespace, names.prefix, *values))
)
scheduler_name = "beat" if config.beat.enabled else "queue-metrics"
scheduler = FargateService(
    scheduler_name,
    roles.scheduler_service(
        config, publisher, {"queue-metrics": publisher_policy}, runtime, placement, after_release
    ),
    aws_only,
)
services = {
    "web": web,
    **{roles.worker_service_key(pool): workers[pool.name] for pool in config.workers.pools},
}
services[scheduler_name] = scheduler

# --- Observability: one dashboard, and the alarms people act on, on one topic -----------------------
observability = Observability(
    "observability",
    ObservabilityArgs(
        dashboard_name=names.prefix,
        region=region,
        account_id=account_id,
        cluster_arn=cluster.arn,
        service_names=[service.service_name for service in services.values()],
        load_balancer_arn_suffix=load_balancer.arn_suffix,
        target_group_arn_suffix=load_balancer.target_group_arn_suffix,
        db_instance_identifier=database.instance_identifier,
        db_allocated_storage_gib=config.database.allocated_storage_gib,
        cache_cluster_ids=broker.member_cluster_ids,
        queue_namespace=metric_namespace,
        pools={pool.name: pool.queues for pool in config.workers.pools},
        publish_interval_seconds=config.scaling.queue_metrics_interval_seconds,
        # Beat's publisher sidecar writes every pool's metrics once per interval; the first pool counts.
        beat_pool=config.workers.pools[0].name if config.beat.enabled else None,
        web_serves_traffic=config.web.desired_count > 0,
        alarms=config.alarms,
        queue_age_alarm_seconds=config.scaling.queue_age_alarm_seconds,
    ),
    aws_only,
)

# --- Queue-length autoscaling per worker pool (its alarms for people go to the topic) ----------------
for pool in config.workers.pools:
    WorkerAutoscaling(
        f"{roles.worker_service_key(pool)}-autoscaling",
        WorkerAutoscalingArgs(
            cluster_name=cluster.name,
            service_name=workers[pool.name].service_name,
            pool=pool.name,
            parameters=config.scaling.parameters(pool),
            metric_namespace=metric_namespace,
            alarm_actions=[observability.topic_arn],
        ),
        aws_only,
    )

# --- Outputs ----------------------------------------------------------------------------------------
pulumi.export("webUrl", web_url)
pulumi.export("albDnsName", load_balancer.dns_name)
pulumi.export("clusterName", cluster.name)
pulumi.export("clusterArn", cluster.arn)
pulumi.export("webServiceName", web.service_name)
pulumi.export("workerServiceNames", {name: worker.service_name for name, worker in workers.items()})
pulumi.export("beatServiceName", scheduler.service_name if config.beat.enabled else None)
pulumi.export("ecrRepositoryUrl", image.repository_url)
pulumi.export("imageRef", image.image_ref)
pulumi.export(
    "logGroupNames",
    {
        "migrate": migrate.log_group_name,
        **{name: service.task.log_group_name for name, service in services.items()},
    },
)
pulumi.export("secretArns", secrets.arns)
pulumi.export("serviceSubnetIds", network.service_subnet_ids)
pulumi.export("appSecurityGroupId", network.app_security_group_id)
pulumi.export("assignPublicIp", network.assign_public_ip)
pulumi.export("webTaskDefinitionArn", web.task.task_definition_arn)
pulumi.export("migrateTaskDefinitionArn", migrate.task_definition_arn)
pulumi.export("webContainerName", web.task.container_name)
pulumi.export("queueMetricsNamespace", metric_namespace)
pulumi.export("alarmTopicArn", observability.topic_arn)
pulumi.export("dashboardName", observability.dashboard_name)
