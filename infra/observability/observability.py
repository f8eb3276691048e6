"""The stack's dashboard, its alarms for people, and where both send their news.

One SNS topic receives every alarm meant for people (this component's, and the queue-age and
publisher-silent alarms of the autoscaling component, which take the topic as their action) and
the ECS deployment failures and circuit-breaker rollbacks of the stack's services, through an
EventBridge rule. An optional e-mail address is subscribed to it. What the dashboard draws and the
alarms watch is defined once, in `infra.observability`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.config.stack import StackConfig
from infra.naming import Cloud, StackNames
from infra.observability.alarms import alarm_rules
from infra.observability.config import AlarmsConfig
from infra.observability.dashboard import dashboard_body
from infra.observability.events import (
    DEPLOYMENT_MESSAGE_PATHS,
    DEPLOYMENT_MESSAGE_TEMPLATE,
    alarm_topic_policy,
    deployment_events_pattern,
    service_arn,
)
from infra.observability.metrics import MonitoredStack, WebTier
from infra.services.roles import WEB, service_keys
from infra.web.config import WebScaling
from infra.web.firewall import COUNTING_RULE_METRICS, RULE_METRICS


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

    @classmethod
    def for_stack(
        cls,
        config: StackConfig,
        names: StackNames,
        cloud: Cloud,
        cluster_arn: pulumi.Input[str],
        watched: WatchedResources,
        key_arn: pulumi.Input[str] | None = None,
    ) -> ObservabilityArgs:
        return cls(
            dashboard_name=names.prefix,
            region=cloud.region,
            account_id=cloud.account_id,
            cluster_arn=cluster_arn,
            # Fixed names: the alarms and the deployment events need not wait for the services.
            service_names=[names.service(key) for key in service_keys(config)],
            load_balancer_arn_suffix=watched.load_balancer_arn_suffix,
            target_group_arn_suffix=watched.target_group_arn_suffix,
            db_instance_identifier=watched.db_instance_identifier,
            db_allocated_storage_gib=config.database.allocated_storage_gib,
            cache_cluster_ids=watched.cache_cluster_ids,
            queue_namespace=names.metric_namespace,
            pools={pool.name: pool.queues for pool in config.workers.pools},
            publish_interval_seconds=config.scaling.queue_metrics_interval_seconds,
            # Beat's publisher sidecar writes every pool's metrics once per interval; the first pool counts.
            beat_pool=config.workers.pools[0].name if config.beat.enabled else None,
            web_serves_traffic=config.web.scaling.min_count > 0,
            cluster_name=names.prefix,
            web_service_name=names.service(WEB),
            web_scaling=config.web.scaling,
            web_acl_name=watched.web_acl_name,
            alarms=config.alarms,
            queue_age_alarm_seconds=config.scaling.queue_age_alarm_seconds,
            key_arn=key_arn,
        )


@dataclass(frozen=True)
class WatchedResources:
    """The identifiers AWS assigns to what the alarms watch."""

    load_balancer_arn_suffix: pulumi.Input[str]
    target_group_arn_suffix: pulumi.Input[str]
    db_instance_identifier: pulumi.Input[str]
    cache_cluster_ids: pulumi.Input[Sequence[str]]
    web_acl_name: pulumi.Input[str] | None = None  # None: no WAF


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
        stack = self._monitored_stack()
        dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=args.dashboard_name,
            dashboard_body=stack.apply(
                lambda plain: dashboard_body(plain, args.alarms, args.queue_age_alarm_seconds)
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self._alarms(stack, topic)
        self._deployment_events(topic)
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

    def _monitored_stack(self) -> pulumi.Output[MonitoredStack]:
        """The names the stack's resources publish metrics under, once AWS has assigned them."""
        args = self._args
        return pulumi.Output.all(
            args.region,
            args.load_balancer_arn_suffix,
            args.target_group_arn_suffix,
            args.db_instance_identifier,
            args.cache_cluster_ids,
            args.web_acl_name or "",
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
            )
        )

    def _web_tier(self, web_acl: str | None) -> WebTier:
        args, scaling = self._args, self._args.web_scaling
        return WebTier(
            cluster=args.cluster_name,
            service=args.web_service_name,
            min_tasks=scaling.min_count,
            max_tasks=scaling.max_count,
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
            web_max_tasks=scaling.max_count if scaling.max_count > scaling.min_count else None,
        )
        for rule in rules:
            aws.cloudwatch.MetricAlarm(
                f"{self._name}-{rule.key}",
                alarm_description=rule.description,
                metric_queries=stack.apply(rule.metric_queries),
                comparison_operator=rule.comparison,
                threshold=rule.threshold,
                evaluation_periods=rule.evaluation_periods,
                datapoints_to_alarm=rule.datapoints_to_alarm,
                treat_missing_data=rule.treat_missing_data,
                alarm_actions=[topic.arn],
                ok_actions=[topic.arn],
                opts=pulumi.ResourceOptions(parent=self),
            )

    def _deployment_events(self, topic: aws.sns.Topic) -> None:
        """Failed deployments and circuit-breaker rollbacks of the stack's services, to the topic."""
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
        aws.cloudwatch.EventTarget(
            f"{name}-deployments",
            rule=deployments.name,
            arn=topic.arn,
            input_transformer=aws.cloudwatch.EventTargetInputTransformerArgs(
                input_paths=DEPLOYMENT_MESSAGE_PATHS, input_template=DEPLOYMENT_MESSAGE_TEMPLATE
            ),
            # EventBridge may publish only once the topic policy lets it.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )
