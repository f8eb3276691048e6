"""The Pulumi program: Django web, Celery workers and Celery Beat on ECS Fargate.

It reads like the architecture: config -> network -> data stores -> secrets -> image -> cluster ->
load balancer -> release (migrations) -> services (web, workers, beat + queue metrics) ->
observability (dashboard, alarms) -> queue autoscaling -> outputs.
"""

import json
import sys
from pathlib import Path

# The CLI runs this directory as a script; the repository root makes `infra` importable as a package,
# so the program and the tests share one set of modules.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

import pulumi  # noqa: E402
import pulumi_aws as aws  # noqa: E402

from infra import containers  # noqa: E402
from infra.app_contract import CONTAINER_PORT  # noqa: E402
from infra.components.autoscaling import (  # noqa: E402
    WorkerAutoscaling,
    WorkerAutoscalingArgs,
    publisher_policy_document,
)
from infra.components.broker import Broker, BrokerArgs  # noqa: E402
from infra.components.cluster import Cluster, ClusterArgs  # noqa: E402
from infra.components.database import Database, DatabaseArgs  # noqa: E402
from infra.components.fargate_service import (  # noqa: E402
    FargateService,
    FargateServiceArgs,
    FargateTask,
    FargateTaskArgs,
    LoadBalancerTarget,
    Placement,
    TaskRuntime,
    service_name,
)
from infra.components.image import AppImage, AppImageArgs  # noqa: E402
from infra.components.network import Network, NetworkArgs  # noqa: E402
from infra.components.observability import Observability, ObservabilityArgs  # noqa: E402
from infra.components.release import Release, ReleaseArgs  # noqa: E402
from infra.components.secrets import AppSecrets, AppSecretsArgs  # noqa: E402
from infra.components.web import WebLoadBalancer, WebLoadBalancerArgs  # noqa: E402
from infra.config import load_stack_config  # noqa: E402
from infra.observability import AlarmThresholds  # noqa: E402
from infra.scaling import schema as queue_metrics  # noqa: E402
from infra.tags import standard_tags  # noqa: E402

WEB_HEALTH_CHECK_GRACE_SECONDS = 60

config = load_stack_config()
project, stack = pulumi.get_project(), pulumi.get_stack()
name_prefix = f"{project}-{stack}"  # physical names: cluster, services, task families, log groups
provider = aws.Provider(
    "aws",
    region=aws.config.region,
    default_tags=aws.ProviderDefaultTagsArgs(tags=standard_tags(project, stack)),
)
aws_only = pulumi.ResourceOptions(providers={"aws": provider})
region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(provider=provider)).region
account_id = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(provider=provider)).account_id

network = Network("network", NetworkArgs(nat_mode=config.nat_mode, https=config.https), aws_only)

database = Database(
    "database",
    DatabaseArgs(
        engine_version=config.db_engine_version,
        parameter_group_family=config.db_parameter_group_family,
        instance_class=config.db_instance_class,
        allocated_storage=config.db_allocated_storage,
        backup_retention_days=config.db_backup_retention_days,
        multi_az=config.db_multi_az,
        deletion_protection=config.db_deletion_protection,
        ephemeral=config.ephemeral,
        subnet_ids=network.private_subnet_ids,
        security_group_id=network.database_security_group_id,
    ),
    aws_only,
)
broker = Broker(
    "broker",
    BrokerArgs(
        engine=config.redis_engine,
        engine_version=config.redis_engine_version,
        parameter_group_family=config.redis_parameter_group_family,
        node_type=config.redis_node_type,
        replicas=config.redis_replicas,
        snapshot_retention_days=config.redis_snapshot_retention_days,
        subnet_ids=network.private_subnet_ids,
        security_group_id=network.redis_security_group_id,
    ),
    aws_only,
)

secrets = AppSecrets(
    "secrets",
    AppSecretsArgs(
        database_url=database.url,
        redis_url=broker.url,
        email_url=config.email_url,
        ephemeral=config.ephemeral,
    ),
    aws_only,
)

image = AppImage(
    "image",
    AppImageArgs(
        context=PROJECT_ROOT / config.image_context,
        dockerfile=PROJECT_ROOT / config.image_dockerfile,
        platform=config.image_platform,
        keep_images=config.ecr_keep_images,
        ephemeral=config.ephemeral,
    ),
    aws_only,
)

cluster = Cluster(
    "cluster", ClusterArgs(name=name_prefix, container_insights=config.container_insights), aws_only
)

load_balancer = WebLoadBalancer(
    "web-lb",
    WebLoadBalancerArgs(
        vpc_id=network.vpc_id,
        subnet_ids=network.public_subnet_ids,
        security_group_id=network.alb_security_group_id,
        idle_timeout_seconds=config.alb_idle_timeout_seconds,
        deletion_protection=config.alb_deletion_protection,
        certificate_arn=config.certificate_arn,
        access_logs=config.alb_access_logs,
        log_retention_days=config.log_retention_days,
        ephemeral=config.ephemeral,
    ),
    aws_only,
)
host_names = load_balancer.dns_name.apply(
    lambda dns_name: [name for name in (config.domain_name, dns_name) if name]
)
web_url = host_names.apply(lambda names: f"{'https' if config.https else 'http'}://{names[0]}")

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
    name_prefix=name_prefix,
    log_retention_days=config.log_retention_days,
    cpu_architecture=config.cpu_architecture,
)
placement = Placement(
    cluster_arn=cluster.arn,
    subnet_ids=network.service_subnet_ids,
    security_group_ids=[network.app_security_group_id],
    assign_public_ip=network.assign_public_ip,
)

migrate = FargateTask(
    "migrate",
    FargateTaskArgs(config.web_cpu, config.web_memory, containers.migrate_container, runtime),
    aws_only,
)
# Migrations run once per new image or migrate task definition; every service waits for them.
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
        timeout_seconds=config.migrate_timeout_seconds,
    ),
    aws_only,
)

web = FargateService(
    "web",
    FargateServiceArgs(
        task=FargateTaskArgs(
            config.web_cpu,
            config.web_memory,
            lambda context, logs: containers.web_container(context, logs, config),
            runtime,
        ),
        placement=placement,
        desired_count=config.web_desired_count,
        spot=config.web_spot,
        load_balancer=LoadBalancerTarget(
            target_group_arn=load_balancer.target_group_arn,
            container_name=containers.WEB,
            container_port=CONTAINER_PORT,
            health_check_grace_period_seconds=WEB_HEALTH_CHECK_GRACE_SECONDS,
        ),
        wait_for_steady_state=True,
        depends_on=[release, *load_balancer.listeners],
    ),
    aws_only,
)

# Worker services expose `service_name` and the cluster name so autoscaling can attach to them.
workers = {
    pool.name: FargateService(
        f"worker-{pool.name}",
        FargateServiceArgs(
            task=FargateTaskArgs(
                pool.cpu,
                pool.memory,
                lambda context, logs, pool=pool: containers.worker_container(
                    context, logs, pool, config.worker_stop_timeout_seconds
                ),
                runtime,
            ),
            placement=placement,
            desired_count=pool.min_count,
            spot=pool.spot,
            autoscaled=True,
            depends_on=[release],
        ),
        aws_only,
    )
    for pool in config.worker_pools
}
metric_namespace = queue_metrics.metric_namespace(project, stack)

# The publisher of the queue metrics that autoscaling acts on. It never runs on a worker queue, so
# it keeps measuring while a pool is backlogged or at zero workers.
publisher = containers.QueueMetricsPublisher(
    namespace=metric_namespace,
    interval_seconds=config.queue_metrics_interval_seconds,
    pools_json=queue_metrics.encode_pools(
        [
            queue_metrics.PoolSpec(
                pool=pool.name, queues=pool.queues, service=service_name(name_prefix, f"worker-{pool.name}")
            )
            for pool in config.worker_pools
        ]
    ),
    cluster_name=name_prefix,
)
publisher_policy = pulumi.Output.all(region, account_id).apply(
    lambda values: json.dumps(publisher_policy_document(metric_namespace, name_prefix, *values))
)

# Exactly one scheduler: the old Beat stops before the new one starts, and no rebalancing adds one.
# The publisher rides along as a non-essential sidecar; without Beat it gets a one-task service.
beat = (
    FargateService(
        "beat",
        FargateServiceArgs(
            task=FargateTaskArgs(
                config.beat_cpu,
                config.beat_memory,
                containers.beat_container,
                runtime,
                sidecars=[
                    lambda context, logs: containers.queue_metrics_container(
                        context, logs, publisher, essential=False
                    )
                ],
                task_role_policies={"queue-metrics": publisher_policy},
            ),
            placement=placement,
            desired_count=1,
            spot=config.beat_spot,
            minimum_healthy_percent=0,
            maximum_percent=100,
            availability_zone_rebalancing=False,
            depends_on=[release],
        ),
        aws_only,
    )
    if config.beat_enabled
    else None
)
standalone_publisher = (
    None
    if beat
    else FargateService(
        "queue-metrics",
        FargateServiceArgs(
            task=FargateTaskArgs(
                config.beat_cpu,
                config.beat_memory,
                lambda context, logs: containers.queue_metrics_container(
                    context, logs, publisher, essential=True
                ),
                runtime,
                task_role_policies={"queue-metrics": publisher_policy},
            ),
            placement=placement,
            desired_count=1,
            depends_on=[release],
        ),
        aws_only,
    )
)

services = {"web": web, **{f"worker-{name}": worker for name, worker in workers.items()}}
if beat:
    services["beat"] = beat
if standalone_publisher:
    services["queue-metrics"] = standalone_publisher

# One dashboard, and the alarms people act on (with failed deployments and rollbacks) on one topic.
observability = Observability(
    "observability",
    ObservabilityArgs(
        dashboard_name=name_prefix,
        region=region,
        account_id=account_id,
        cluster_arn=cluster.arn,
        service_names=[service.service_name for service in services.values()],
        load_balancer_arn_suffix=load_balancer.arn_suffix,
        target_group_arn_suffix=load_balancer.target_group_arn_suffix,
        db_instance_identifier=database.instance_identifier,
        db_allocated_storage_gib=config.db_allocated_storage,
        cache_cluster_ids=broker.member_cluster_ids,
        queue_namespace=metric_namespace,
        pools={pool.name: pool.queues for pool in config.worker_pools},
        publish_interval_seconds=config.queue_metrics_interval_seconds,
        # Beat's publisher sidecar writes every pool's metrics once per interval; the first pool counts.
        beat_pool=config.worker_pools[0].name if beat else None,
        web_serves_traffic=config.web_desired_count > 0,
        thresholds=AlarmThresholds(
            web_5xx_percent=config.web_5xx_alarm_percent,
            db_free_storage_percent=config.db_free_storage_alarm_percent,
            redis_memory_percent=config.redis_memory_alarm_percent,
            beat_alarm_minutes=config.beat_alarm_minutes,
            queue_age_seconds=config.queue_age_alarm_seconds,
        ),
        alarm_email=config.alarm_email,
    ),
    aws_only,
)

# Queue-length autoscaling per worker pool; its queue-age and publisher-silent alarms go to the topic.
for pool in config.worker_pools:
    WorkerAutoscaling(
        f"worker-{pool.name}-autoscaling",
        WorkerAutoscalingArgs(
            cluster_name=cluster.name,
            service_name=workers[pool.name].service_name,
            pool=pool.name,
            parameters=config.scaling_parameters(pool),
            metric_namespace=metric_namespace,
            alarm_actions=[observability.topic_arn],
        ),
        aws_only,
    )

pulumi.export("webUrl", web_url)
pulumi.export("albDnsName", load_balancer.dns_name)
pulumi.export("clusterName", cluster.name)
pulumi.export("clusterArn", cluster.arn)
pulumi.export("webServiceName", web.service_name)
pulumi.export("workerServiceNames", {name: worker.service_name for name, worker in workers.items()})
pulumi.export("beatServiceName", beat.service_name if beat else None)
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
