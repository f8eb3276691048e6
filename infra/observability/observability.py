"""The stack's dashboard, its alarms for people, and where both send their news.

One SNS topic receives every alarm meant for people (this component's, and the queue-age and
publisher-silent alarms of the autoscaling component, which take the topic as their action) and
the ECS deployment failures and circuit-breaker rollbacks of the stack's services, through an
EventBridge rule whose undelivered events wait in a dead-letter queue (and two alarms say when
that path fails). An optional e-mail address is subscribed to it. What the dashboard draws and the
alarms watch is defined once, in `infra.observability`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.cloudwatch.alarm import AlarmSpec, metric_alarm
from infra.data.config import DatabaseConfig
from infra.naming import Cloud, StackNames
from infra.observability.alarms import alarm_rules
from infra.observability.config import AlarmsConfig
from infra.observability.dashboard import dashboard_body
from infra.observability.events import (
    DEAD_LETTER_RETENTION_SECONDS,
    DEPLOYMENT_MESSAGE_PATHS,
    DEPLOYMENT_MESSAGE_TEMPLATE,
    alarm_topic_policy,
    dead_letter_queue_policy,
    deployment_events_pattern,
    service_arn,
)
from infra.observability.metrics import MonitoredStack, WebTier
from infra.scheduler.config import BeatConfig
from infra.web.config import WebConfig, WebScaling
from infra.web.firewall import COUNTING_RULE_METRICS, RULE_METRICS
from infra.web.service import SERVICE_KEY as WEB_SERVICE_KEY
from infra.workers.config import WorkersConfig


@dataclass(frozen=True)
class ObservabilityArgs:
    dashboard_name: str
    region: pulumi.Input[str]
    account_id: pulumi.Input[str]
    cluster_arn: pulumi.Input[str]
    service_names: Sequence[pulumi.Input[str]]  # every service whose deployments people hear about
    load_balancer_arn_suffix: pulumi.Input[str]
    target_group_arn_suffix: pulumi.Input[str]
    db_instance_identifier: pulumi.Input[str]
    db_allocated_storage_gib: int
    cache_cluster_ids: pulumi.Input[Sequence[str]]
    queue_namespace: str
    pools: Mapping[str, tuple[str, ...]]  # worker pool -> its queues
    publish_interval_seconds: int
    beat_pool: str | None  # the pool whose publisher datapoints count Beat tasks; None: no Beat
    web_serves_traffic: bool  # at least one web task is wanted
    cluster_name: str
    web_service_name: str
    web_scaling: WebScaling
    web_acl_name: pulumi.Input[str] | None  # the WAF web ACL in front of the load balancer, if any
    alarms: AlarmsConfig
    queue_age_alarm_seconds: int  # the autoscaling component's alarm, drawn on the dashboard
    # The stack's KMS key for the alarm topic (its policy lets alarms and EventBridge publish);
    # None: an unencrypted topic.
    key_arn: pulumi.Input[str] | None = None
    # The names of the Beat schedule entries' alarms (infra/schedules), drawn on the dashboard.
    schedule_alarm_names: pulumi.Input[Sequence[str]] = ()
    # The web's second target group (a traffic-shifting deployment); None: one target group.
    alternate_target_group_arn_suffix: pulumi.Input[str] | None = None

    @classmethod
    def for_stack(
        cls,
        settings: WatchedSettings,
        names: StackNames,
        cloud: Cloud,
        watched: WatchedResources,
        schedule_alarm_names: pulumi.Input[Sequence[str]] = (),
    ) -> ObservabilityArgs:
        workers, beat, web = settings.workers, settings.beat, settings.web
        service_keys = [WEB_SERVICE_KEY, *(pool.service_key for pool in workers.pools), beat.service_key]
        return cls(
            dashboard_name=names.prefix,
            region=cloud.region,
            account_id=cloud.account_id,
            cluster_arn=watched.cluster_arn,
            # Fixed names: the alarms and the deployment events need not wait for the services.
            service_names=[names.service(key) for key in service_keys],
            load_balancer_arn_suffix=watched.load_balancer_arn_suffix,
            target_group_arn_suffix=watched.target_group_arn_suffix,
            alternate_target_group_arn_suffix=watched.alternate_target_group_arn_suffix,
            db_instance_identifier=watched.db_instance_identifier,
            db_allocated_storage_gib=settings.database.allocated_storage_gib,
            cache_cluster_ids=watched.cache_cluster_ids,
            queue_namespace=names.metric_namespace,
            pools={pool.name: pool.queues for pool in workers.pools},
            publish_interval_seconds=workers.timings.publish_interval_seconds,
            # Beat's publisher sidecar writes every pool's metrics once per interval; the first pool counts.
            beat_pool=workers.pools[0].name if beat.enabled else None,
            web_serves_traffic=web.scaling.min_count > 0,
            cluster_name=names.prefix,
            web_service_name=names.service(WEB_SERVICE_KEY),
            web_scaling=web.scaling,
            web_acl_name=watched.web_acl_name,
            alarms=settings.alarms,
            queue_age_alarm_seconds=workers.timings.queue_age_alarm_seconds,
            key_arn=watched.key_arn,
            schedule_alarm_names=schedule_alarm_names,
        )


@dataclass(frozen=True)
class WatchedSettings:
    """The stack settings the dashboard and the alarms read."""

    alarms: AlarmsConfig
    database: DatabaseConfig
    web: WebConfig
    workers: WorkersConfig
    beat: BeatConfig


@dataclass(frozen=True)
class WatchedResources:
    """The identifiers AWS assigns to what the alarms watch, and the key of the alarm topic."""

    cluster_arn: pulumi.Input[str]
    load_balancer_arn_suffix: pulumi.Input[str]
    target_group_arn_suffix: pulumi.Input[str]
    db_instance_identifier: pulumi.Input[str]
    cache_cluster_ids: pulumi.Input[Sequence[str]]
    web_acl_name: pulumi.Input[str] | None = None  # None: no WAF
    key_arn: pulumi.Input[str] | None = None  # the stack's KMS key, which encrypts the alarm topic
    alternate_target_group_arn_suffix: pulumi.Input[str] | None = None  # traffic-shifting web only


class Observability(pulumi.ComponentResource):
    topic_arn: pulumi.Output[str]
    dashboard_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("djcelery:index:Observability", name, None, opts)
        self._name, self._args = name, args
        topic = aws.sns.Topic(
            f"{name}-alarms", kms_master_key_id=args.key_arn, opts=pulumi.ResourceOptions(parent=self)
        )
        deployments, dead_letters = self._deployment_events(topic)
        stack = self._monitored_stack(deployments.name, dead_letters.name)
        dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=args.dashboard_name,
            dashboard_body=stack.apply(
                lambda plain: dashboard_body(plain, args.alarms, args.queue_age_alarm_seconds)
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self._alarms(stack, topic)
        if args.alarms.email:
            # AWS e-mails a confirmation link; nothing arrives until it is followed.
            aws.sns.TopicSubscription(
                f"{name}-email",
                topic=topic.arn,
                protocol="email",
                endpoint=args.alarms.email,
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.topic_arn = topic.arn
        self.dashboard_name = dashboard.dashboard_name
        self.register_outputs({"topic_arn": self.topic_arn, "dashboard_name": self.dashboard_name})

    def _monitored_stack(
        self, deployment_rule: pulumi.Output[str], dead_letters: pulumi.Output[str]
    ) -> pulumi.Output[MonitoredStack]:
        """The names the stack's resources publish metrics under, once AWS has assigned them."""
        args = self._args
        return pulumi.Output.all(
            args.region,
            args.load_balancer_arn_suffix,
            args.target_group_arn_suffix,
            args.db_instance_identifier,
            args.cache_cluster_ids,
            args.web_acl_name or "",
            deployment_rule,
            dead_letters,
            args.account_id,
            args.schedule_alarm_names,
            args.alternate_target_group_arn_suffix or "",
        ).apply(
            lambda values: MonitoredStack(
                region=values[0],
                load_balancer=values[1],
                target_group=values[2],
                db_instance=values[3],
                db_allocated_storage_gib=args.db_allocated_storage_gib,
                cache_clusters=tuple(values[4]),
                queue_namespace=args.queue_namespace,
                pools=args.pools,
                publish_interval_seconds=args.publish_interval_seconds,
                beat_pool=args.beat_pool,
                web=self._web_tier(values[5] or None),
                deployment_rule=values[6],
                deployment_dead_letters=values[7],
                schedule_alarms=tuple(
                    f"arn:aws:cloudwatch:{values[0]}:{values[8]}:alarm:{name}" for name in values[9]
                ),
                alternate_target_group=values[10] or None,
            )
        )

    def _web_tier(self, web_acl: str | None) -> WebTier:
        args, scaling = self._args, self._args.web_scaling
        return WebTier(
            cluster=args.cluster_name,
            service=args.web_service_name,
            min_count=scaling.min_count,
            max_count=scaling.max_count,
            requests_per_task=scaling.requests_per_task,
            cpu_percent=scaling.cpu_percent,
            web_acl=web_acl,
            waf_rules=RULE_METRICS if web_acl else (),
            waf_counting_rules=COUNTING_RULE_METRICS if web_acl else (),
        )

    def _alarms(self, stack: pulumi.Output[MonitoredStack], topic: aws.sns.Topic) -> None:
        args, scaling = self._args, self._args.web_scaling
        rules = alarm_rules(
            args.alarms,
            db_allocated_storage_gib=args.db_allocated_storage_gib,
            publish_interval_seconds=args.publish_interval_seconds,
            web_serves_traffic=args.web_serves_traffic,
            beat_pool=args.beat_pool,
            # A fixed-size web service (min = max) is always at its maximum: nothing to tell.
            web_max_count=scaling.max_count if scaling.max_count > scaling.min_count else None,
        )
        for rule in rules:
            spec = AlarmSpec(
                description=rule.description,
                watches=stack.apply(rule.watches),
                comparison=rule.comparison,
                threshold=rule.threshold,
                evaluation_periods=rule.evaluation_periods,
                datapoints_to_alarm=rule.datapoints_to_alarm,
                treat_missing_data=rule.treat_missing_data,
            )
            metric_alarm(f"{self._name}-{rule.key}", spec, [topic.arn], pulumi.ResourceOptions(parent=self))

    def _deployment_events(self, topic: aws.sns.Topic) -> tuple[aws.cloudwatch.EventRule, aws.sqs.Queue]:
        """Failed deployments and circuit-breaker rollbacks of the stack's services, to the topic;
        what EventBridge cannot deliver waits in a dead-letter queue (and alarms say so)."""
        args, name, child = self._args, self._name, pulumi.ResourceOptions(parent=self)
        deployments = aws.cloudwatch.EventRule(
            f"{name}-deployments",
            description="Failed ECS deployments and circuit-breaker rollbacks of this stack's services",
            event_pattern=pulumi.Output.all(args.cluster_arn, *args.service_names).apply(
                lambda values: deployment_events_pattern(
                    [service_arn(values[0], service) for service in values[1:]]
                )
            ),
            opts=child,
        )
        policy = aws.sns.TopicPolicy(
            f"{name}-alarms",
            arn=topic.arn,
            policy=pulumi.Output.all(topic.arn, args.account_id, args.region, deployments.arn).apply(
                lambda values: alarm_topic_policy(*values)
            ),
            opts=child,
        )
        dead_letters, dead_letters_policy = self._dead_letters(deployments)
        aws.cloudwatch.EventTarget(
            f"{name}-deployments",
            rule=deployments.name,
            arn=topic.arn,
            input_transformer=aws.cloudwatch.EventTargetInputTransformerArgs(
                input_paths=DEPLOYMENT_MESSAGE_PATHS, input_template=DEPLOYMENT_MESSAGE_TEMPLATE
            ),
            dead_letter_config=aws.cloudwatch.EventTargetDeadLetterConfigArgs(arn=dead_letters.arn),
            # EventBridge may publish (and set aside what fails) only once the policies let it.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy, dead_letters_policy]),
        )
        return deployments, dead_letters

    def _dead_letters(self, rule: aws.cloudwatch.EventRule) -> tuple[aws.sqs.Queue, aws.sqs.QueuePolicy]:
        """The queue EventBridge sends the events it could not deliver to, kept for 14 days (the SQS
        maximum), writable by that one rule only (EventBridge user guide, dead-letter queues)."""
        args, name, child = self._args, self._name, pulumi.ResourceOptions(parent=self)
        queue = aws.sqs.Queue(
            f"{name}-deployment-dead-letters",
            message_retention_seconds=DEAD_LETTER_RETENTION_SECONDS,
            kms_master_key_id=args.key_arn,
            sqs_managed_sse_enabled=None if args.key_arn else True,
            opts=child,
        )
        policy = aws.sqs.QueuePolicy(
            f"{name}-deployment-dead-letters",
            queue_url=queue.id,
            policy=pulumi.Output.all(queue.arn, rule.arn).apply(
                lambda values: dead_letter_queue_policy(*values)
            ),
            opts=child,
        )
        return queue, policy
