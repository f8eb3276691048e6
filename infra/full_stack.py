"""A full stack: everything of its own (the wiring of `dev`, `prod`, and a `pr-N` that changes the
infrastructure itself).

config -> network -> data stores and secrets -> image -> cluster and load balancer -> release
(migrations) -> observability (with an alarm per Beat schedule entry the release recorded) ->
services (web, one component per worker pool with its autoscaling, Beat with the queue-metrics
publisher) -> outputs. Only this wiring sees the whole stack config; each component gets the parts
it reads. Every ECS task launch (the release and each service) waits for everything its containers
need at start: routes out, data stores, secret values, its roles' policies and the cluster's
capacity providers.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra.app_contract import Role
from infra.data.broker import Broker, BrokerArgs
from infra.data.database import Database, DatabaseArgs
from infra.data.secrets import AppSecrets, AppSecretsArgs
from infra.encryption.key import DataKey, DataKeyArgs
from infra.image.image import AppImage, AppImageArgs
from infra.naming import StackContext
from infra.network.network import Network, NetworkArgs
from infra.observability.observability import (
    Observability,
    ObservabilityArgs,
    WatchedResources,
    WatchedSettings,
)
from infra.outputs import StackOutput
from infra.release.release import Release, ReleasedStack, release_phase
from infra.scheduler.scheduler import Scheduler, SchedulerArgs
from infra.schedules.schedules import ScheduleAlarms, ScheduleAlarmsArgs, entry_alarm_names
from infra.service_outputs import export_services, separate_services
from infra.services.cluster import Cluster, ClusterArgs
from infra.services.fargate import FargateTask, Placement, TaskRuntime
from infra.services.runtime import RuntimeSettings, TaskData, task_runtime
from infra.stack import PROJECT_ROOT, StackConfig
from infra.storage.bucket import MediaBucket, MediaBucketArgs
from infra.web.load_balancer import WebLoadBalancer, WebLoadBalancerArgs
from infra.web.service import WebService, WebServiceArgs
from infra.workers.pool import WorkerPool, WorkerPoolArgs


@dataclass(frozen=True)
class DataStores:
    key_arn: pulumi.Output[str] | None
    media: MediaBucket
    network: Network
    database: Database
    broker: Broker
    secrets: AppSecrets
    image: AppImage


@dataclass(frozen=True)
class Released:
    cluster: Cluster
    load_balancer: WebLoadBalancer
    web_url: pulumi.Output[str]
    runtime: TaskRuntime
    placement: Placement
    migrate: FargateTask
    release: Release
    # What every ECS task launch waits for: a task started before these exist fails with
    # ResourceInitializationError (no route to pull the image, no secret value, no database).
    task_prerequisites: list[pulumi.Resource]


def wire_full_stack(config: StackConfig, stack: StackContext) -> None:
    data = data_stores(config, stack)
    released = cluster_edge_and_release(config, stack, data)
    observability = watch(config, stack, data, released)
    services_wait_for = [*released.task_prerequisites, released.release]
    runtime, placement = released.runtime, released.placement
    web = WebService(
        Role.WEB,
        WebServiceArgs(
            config.web,
            runtime,
            placement,
            stack.names.cluster,
            stack.cloud.region,
            released.load_balancer.targets,
            depends_on=[*services_wait_for, *released.load_balancer.edge],
        ),
        stack.opts,
    )
    workers = {
        pool.name: WorkerPool(
            pool.service_key,
            WorkerPoolArgs(
                pool,
                runtime,
                placement,
                stack.names,
                stack.cloud,
                observability.topic_arn,
                services_wait_for,
                config.workers.canary_max_failure_percent,
            ),
            stack.opts,
        )
        for pool in config.workers.pools
    }
    scheduler = Scheduler(
        "scheduler",
        SchedulerArgs(
            config.beat, config.workers, runtime, placement, stack.names, stack.cloud, services_wait_for
        ),
        stack.opts,
    )
    export_services(
        separate_services(web, workers, scheduler, beat_enabled=config.beat.enabled), released.migrate
    )
    export_stack(stack, data, released, observability)


def data_stores(config: StackConfig, stack: StackContext) -> DataStores:
    """The stack's KMS key (optional), media bucket, network, database, broker, secrets and image."""
    names, cloud, aws_only, protect = stack.names, stack.cloud, stack.opts, config.protect_resources
    key = (
        DataKey("data-key", DataKeyArgs.for_stack(names, cloud, config.ephemeral, protect), aws_only)
        if config.encryption.customer_managed_key
        else None
    )
    key_arn = key.arn if key else None
    media = MediaBucket("media", MediaBucketArgs(config.media, names.prefix, protect, key_arn), aws_only)
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
        BrokerArgs(
            config.broker, network.private_subnet_ids, network.redis_security_group_id, protect, key_arn
        ),
        aws_only,
    )
    secrets = AppSecrets(
        "secrets",
        AppSecretsArgs(database.url, broker.url, config.app.email_url, config.ephemeral, key_arn),
        aws_only,
    )
    image = AppImage("image", AppImageArgs(config.image, PROJECT_ROOT, protect, key_arn), aws_only)
    return DataStores(key_arn, media, network, database, broker, secrets, image)


def cluster_edge_and_release(config: StackConfig, stack: StackContext, data: DataStores) -> Released:
    """The cluster, the load balancer, and the release: migrations run once per new image or
    migrate task definition."""
    names, aws_only, network = stack.names, stack.opts, data.network
    cluster = Cluster(
        "cluster",
        ClusterArgs(names.prefix, config.logs.container_insights, config.logs.retention_days, data.key_arn),
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
            protect=config.protect_resources,
            name_prefix=names.prefix,
            key_arn=data.key_arn,
        ),
        aws_only,
    )
    host_names = load_balancer.dns_name.apply(
        lambda dns: [name for name in (config.web.domain_name, dns) if name]
    )
    web_url = host_names.apply(lambda hosts: f"{'https' if config.web.https else 'http'}://{hosts[0]}")
    task_data = TaskData(
        data.media.bucket_name,
        config.database.restored_identifier or names.database,
        data.secrets.fingerprint,
        {"exec": cluster.exec_policy, "media": data.media.task_policy},
        data.key_arn,
    )
    runtime_settings = RuntimeSettings(
        config.app_settings, config.logs.retention_days, config.image.cpu_architecture, not config.ephemeral
    )
    runtime = task_runtime(
        runtime_settings, names, data.image, data.secrets.arns, host_names, stack.cloud, task_data
    )
    placement = Placement(
        cluster.arn, network.service_subnet_ids, [network.app_security_group_id], network.assign_public_ip
    )
    task_prerequisites: list[pulumi.Resource] = [network, data.database, data.broker, data.secrets, cluster]
    migrate, release = release_phase(
        ReleasedStack(config.release, config.workers, config.beat, config.web.deployment, config.web.size),
        runtime,
        placement,
        data.image,
        stack.cloud.region,
        task_prerequisites,
        aws_only,
    )
    return Released(cluster, load_balancer, web_url, runtime, placement, migrate, release, task_prerequisites)


def watch(config: StackConfig, stack: StackContext, data: DataStores, released: Released) -> Observability:
    """One dashboard, and the alarms people act on, on one topic; the alarms of the Beat schedule's
    entries follow what each release recorded (infra/schedules)."""
    load_balancer = released.load_balancer
    watched = WatchedResources(
        released.cluster.arn,
        load_balancer.arn_suffix,
        load_balancer.target_group_arn_suffix,
        data.database.instance_identifier,
        data.broker.member_cluster_ids,
        load_balancer.web_acl_name,
        data.key_arn,
        load_balancer.targets.target_group_arn_suffixes[1] if config.web.deployment.shifts_traffic else None,
    )
    schedule = (
        released.release.record.apply(lambda record: record.get("beatSchedule") or {})
        if config.beat.enabled
        else None
    )
    names = stack.names
    observability = Observability(
        "observability",
        ObservabilityArgs.for_stack(
            WatchedSettings(config.alarms, config.database, config.web, config.workers, config.beat),
            names,
            stack.cloud,
            watched,
            schedule.apply(lambda entries: entry_alarm_names(names.prefix, entries)) if schedule else (),
        ),
        stack.opts,
    )
    if schedule is not None:
        ScheduleAlarms(
            "schedule-alarms",
            ScheduleAlarmsArgs(
                schedule,
                config.schedule_alarms,
                names.prefix,
                names.metric_namespace,
                observability.topic_arn,
                stack.cloud.region,
            ),
            stack.opts,
        )
    return observability


def export_stack(
    stack: StackContext, data: DataStores, released: Released, observability: Observability
) -> None:
    pulumi.export(StackOutput.WEB_URL, released.web_url)
    pulumi.export(StackOutput.ALB_DNS_NAME, released.load_balancer.dns_name)
    pulumi.export(StackOutput.CLUSTER_NAME, released.cluster.name)
    pulumi.export(StackOutput.CLUSTER_ARN, released.cluster.arn)
    pulumi.export(StackOutput.ECR_REPOSITORY_URL, data.image.repository_url)
    pulumi.export(StackOutput.IMAGE_REF, data.image.image_ref)
    pulumi.export(StackOutput.RELEASE, released.release.record)  # the image, its tasks and migrations
    pulumi.export(StackOutput.SECRET_ARNS, data.secrets.arns)
    pulumi.export(StackOutput.SERVICE_SUBNET_IDS, data.network.service_subnet_ids)
    pulumi.export(StackOutput.APP_SECURITY_GROUP_ID, data.network.app_security_group_id)
    pulumi.export(StackOutput.ASSIGN_PUBLIC_IP, data.network.assign_public_ip)
    pulumi.export(StackOutput.QUEUE_METRICS_NAMESPACE, stack.names.metric_namespace)
    pulumi.export(StackOutput.ALARM_TOPIC_ARN, observability.topic_arn)
    pulumi.export(StackOutput.DASHBOARD_NAME, observability.dashboard_name)
    pulumi.export(StackOutput.DB_INSTANCE_IDENTIFIER, data.database.instance_identifier)
    pulumi.export(StackOutput.MEDIA_BUCKET_NAME, data.media.bucket_name)
    pulumi.export(StackOutput.EXEC_AUDIT_LOG_GROUP_NAME, released.cluster.exec_audit_log_group_name)
    pulumi.export(StackOutput.DATA_KEY_ARN, data.key_arn)
