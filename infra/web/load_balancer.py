"""The public entry point: a dual-stack ALB in the public subnets forwarding to the web tasks.

The target group checks `/healthz`. With a certificate (brought, or issued for `domainName` in its
Route 53 zone, which also gets A and AAAA alias records), HTTPS uses a TLS 1.3 policy and plain
HTTP answers with a redirect to HTTPS; without one, HTTP forwards to the app. The listener that
serves the app closes the admin to all but the allowed networks, and AWS WAF, when on, filters
every request first. Access logs, when on, go to a private, encrypted bucket that expires them
after the stack's log retention. A web deployment that shifts traffic (`webDeployment` other than
rolling) gets a second, identical target group: ECS starts each new revision in the one the old
revision does not use (infra/web/traffic.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import iam
from infra.app_contract import CONTAINER_PORT, LIVENESS_PATH
from infra.encryption.key import WAF_LOG_GROUP_PREFIX
from infra.storage.bucket import abort_incomplete_uploads_rule, block_public_access, tls_only_statement
from infra.web.admin import admin_rules
from infra.web.config import WebConfig
from infra.web.domain import PublicDomain, PublicDomainArgs
from infra.web.firewall import WebFirewall, WebFirewallArgs

# TLS 1.3 only: one of the policies Security Hub ELB.17 accepts.
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-3-2021-06"


@dataclass(frozen=True)
class WebLoadBalancerArgs:
    config: WebConfig
    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    log_retention_days: int  # of the access logs and the firewall's logs, when they are on
    protect: bool  # Pulumi `protect` on the ALB and its log bucket; unprotected, destroy empties the bucket
    name_prefix: str = ""  # the stack's prefix, which names the firewall's log group
    key_arn: pulumi.Input[str] | None = None  # the stack's KMS key, which encrypts the firewall's logs


def access_log_bucket_policy(bucket_arn: str, elb_account_arn: str) -> str:
    """ALB log delivery may write objects: regions older than 2022 deliver as a regional ELB account,
    newer ones as the log delivery service."""
    objects = f"{bucket_arn}/AWSLogs/*"
    return json.dumps(
        iam.document(
            iam.statement(
                "ElbAccountWritesLogs", "s3:PutObject", objects, principal={"AWS": elb_account_arn}
            ),
            iam.statement(
                "LogDeliveryWritesLogs",
                "s3:PutObject",
                objects,
                principal={"Service": "logdelivery.elasticloadbalancing.amazonaws.com"},
            ),
            tls_only_statement(bucket_arn),
        )
    )


@dataclass(frozen=True)
class WebTargets:
    """Where the web tasks register, and the names CloudWatch measures their requests by."""

    listener_arn: pulumi.Output[str]  # the listener that serves the app
    load_balancer_arn_suffix: pulumi.Output[str]  # the `LoadBalancer` dimension: app/<alb>/<id>
    # The primary target group, then the alternate one when the deployment shifts traffic.
    target_group_arns: list[pulumi.Output[str]]
    target_group_arn_suffixes: list[pulumi.Output[str]]  # `TargetGroup` dimensions: targetgroup/<name>/<id>


@dataclass(frozen=True)
class HealthCheckTiming:
    """How often and how patiently the load balancer checks a target (elbv2 CreateTargetGroup)."""

    interval_seconds: int = 15
    timeout_seconds: int = 5
    healthy_threshold: int = 2
    unhealthy_threshold: int = 3


def web_target_group(
    name: str,
    vpc_id: pulumi.Input[str],
    deregistration_delay_seconds: int,
    opts: pulumi.ResourceOptions,
    timing: HealthCheckTiming = HealthCheckTiming(),
) -> aws.lb.TargetGroup:
    """Where the web tasks register, checked on `/healthz`."""
    return aws.lb.TargetGroup(
        name,
        target_type="ip",
        port=CONTAINER_PORT,
        protocol="HTTP",
        vpc_id=vpc_id,
        # Scale-in and deploys: a leaving task finishes its requests before ECS stops it.
        deregistration_delay=deregistration_delay_seconds,
        health_check=aws.lb.TargetGroupHealthCheckArgs(
            path=LIVENESS_PATH,
            protocol="HTTP",
            matcher="200",
            interval=timing.interval_seconds,
            timeout=timing.timeout_seconds,
            healthy_threshold=timing.healthy_threshold,
            unhealthy_threshold=timing.unhealthy_threshold,
        ),
        opts=opts,
    )


def public_load_balancer(
    name: str,
    subnet_ids: Sequence[pulumi.Input[str]],
    security_group_id: pulumi.Input[str],
    idle_timeout_seconds: int,
    opts: pulumi.ResourceOptions,
    enable_deletion_protection: bool | None = None,
    access_logs: aws.lb.LoadBalancerAccessLogsArgs | None = None,
) -> aws.lb.LoadBalancer:
    """An internet-facing ALB as every stack kind has it: IPv4 and IPv6 (the public subnets have
    both, so a domain gets A and AAAA records), and requests with invalid header fields dropped
    before they reach a target (Security Hub ELB.4)."""
    return aws.lb.LoadBalancer(
        name,
        load_balancer_type="application",
        internal=False,
        ip_address_type="dualstack",
        subnets=list(subnet_ids),
        security_groups=[security_group_id],
        drop_invalid_header_fields=True,
        idle_timeout=idle_timeout_seconds,
        enable_deletion_protection=enable_deletion_protection,
        access_logs=access_logs,
        opts=opts,
    )


class WebLoadBalancer(pulumi.ComponentResource):
    dns_name: pulumi.Output[str]
    target_group_arn: pulumi.Output[str]
    # The CloudWatch dimension values of the ALB and its target group (AWS/ApplicationELB).
    arn_suffix: pulumi.Output[str]
    target_group_arn_suffix: pulumi.Output[str]
    listeners: list[aws.lb.Listener]
    # What must be in place before the web tasks serve: the listeners (ECS refuses a target group
    # without one), the admin rules and the firewall, so the app is never reachable without them.
    edge: list[pulumi.Resource]
    targets: WebTargets
    web_acl_name: pulumi.Output[str] | None  # the WAF web ACL's name; None without WAF
    certificate_arn: pulumi.Output[str] | None  # the certificate HTTPS uses; None without HTTPS

    def __init__(
        self, name: str, args: WebLoadBalancerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("djcelery:index:WebLoadBalancer", name, None, opts)
        self._name = name
        child = pulumi.ResourceOptions(parent=self)
        config = args.config
        load_balancer = self._load_balancer(args)
        target_groups = [self._target_group(f"{name}-targets", args)]
        if config.deployment.shifts_traffic:
            target_groups.append(self._target_group(f"{name}-alternate-targets", args))
        target_group = target_groups[0]
        self.certificate_arn = self._certificate_arn(load_balancer, config)
        self.listeners = self._listeners(load_balancer, target_group, self.certificate_arn)
        # The last listener serves the app (HTTPS with a certificate; HTTP only redirects then).
        self.edge = [*self.listeners]
        if not config.admin_open_to_everyone:
            self.edge += admin_rules(
                name, self.listeners[-1], target_group.arn, config.admin_allowed_cidrs, child
            )
        self.web_acl_name = None
        if config.firewall.enabled:
            firewall = WebFirewall(
                f"{name}-waf",
                WebFirewallArgs(
                    config.firewall,
                    load_balancer.arn,
                    None if config.admin_open_to_everyone else config.admin_allowed_cidrs,
                    f"{WAF_LOG_GROUP_PREFIX}{args.name_prefix}",
                    args.log_retention_days,
                    args.key_arn,
                ),
                child,
            )
            self.edge.append(firewall)
            self.web_acl_name = firewall.web_acl_name
        self.dns_name = load_balancer.dns_name
        self.target_group_arn = target_group.arn
        self.arn_suffix = load_balancer.arn_suffix
        self.target_group_arn_suffix = target_group.arn_suffix
        self.targets = WebTargets(
            listener_arn=self.listeners[-1].arn,
            load_balancer_arn_suffix=load_balancer.arn_suffix,
            target_group_arns=[group.arn for group in target_groups],
            target_group_arn_suffixes=[group.arn_suffix for group in target_groups],
        )
        self.register_outputs({"dns_name": self.dns_name, "target_group_arn": self.target_group_arn})

    def _target_group(self, name: str, args: WebLoadBalancerArgs) -> aws.lb.TargetGroup:
        return web_target_group(
            name, args.vpc_id, args.config.deregistration_delay_seconds, pulumi.ResourceOptions(parent=self)
        )

    def _load_balancer(self, args: WebLoadBalancerArgs) -> aws.lb.LoadBalancer:
        config = args.config
        access_logs, log_policy = (None, None)
        if config.alb_access_logs:
            access_logs, log_policy = self._access_logs(self._name, args)
        return public_load_balancer(
            f"{self._name}-alb",
            args.subnet_ids,
            args.security_group_id,
            config.alb_idle_timeout_seconds,
            # The ALB checks at creation that it may write to the bucket.
            pulumi.ResourceOptions(
                parent=self, depends_on=[log_policy] if log_policy else None, protect=args.protect
            ),
            enable_deletion_protection=config.alb_deletion_protection,
            access_logs=access_logs,
        )

    def _certificate_arn(
        self, load_balancer: aws.lb.LoadBalancer, config: WebConfig
    ) -> pulumi.Output[str] | None:
        """The certificate of the HTTPS listener: issued and validated here, or the user's own. A
        domain in a hosted zone also gets its alias records."""
        issued = None
        if config.hosted_zone_id:
            domain = PublicDomain(
                f"{self._name}-domain",
                PublicDomainArgs(
                    config.domain_name,
                    config.hosted_zone_id,
                    config.issues_certificate,
                    load_balancer.dns_name,
                    load_balancer.zone_id,
                ),
                pulumi.ResourceOptions(parent=self),
            )
            issued = domain.certificate_arn
        if issued is None and config.certificate_arn:
            return pulumi.Output.from_input(config.certificate_arn)
        return issued

    def _listeners(
        self,
        load_balancer: aws.lb.LoadBalancer,
        target_group: aws.lb.TargetGroup,
        certificate_arn: pulumi.Output[str] | None,
    ) -> list[aws.lb.Listener]:
        """Port 80, and 443 with a certificate; with a certificate, port 80 only redirects to HTTPS
        (ELB.1), without one it serves the app."""
        name, child = self._name, pulumi.ResourceOptions(parent=self)
        forward = aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=target_group.arn)
        redirect = aws.lb.ListenerDefaultActionArgs(
            type="redirect",
            redirect=aws.lb.ListenerDefaultActionRedirectArgs(
                protocol="HTTPS", port="443", status_code="HTTP_301"
            ),
        )
        listeners = [
            aws.lb.Listener(
                f"{name}-http",
                load_balancer_arn=load_balancer.arn,
                port=80,
                protocol="HTTP",
                default_actions=[forward if certificate_arn is None else redirect],
                opts=child,
            )
        ]
        if certificate_arn is not None:
            listeners.append(
                aws.lb.Listener(
                    f"{name}-https",
                    load_balancer_arn=load_balancer.arn,
                    port=443,
                    protocol="HTTPS",
                    ssl_policy=TLS_POLICY,
                    certificate_arn=certificate_arn,
                    default_actions=[forward],
                    opts=child,
                )
            )
        return listeners

    def _access_logs(
        self, name: str, args: WebLoadBalancerArgs
    ) -> tuple[aws.lb.LoadBalancerAccessLogsArgs, aws.s3.BucketPolicy]:
        child = pulumi.ResourceOptions(parent=self)
        bucket = aws.s3.Bucket(
            f"{name}-access-logs",
            force_destroy=not args.protect,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        block_public_access(f"{name}-access-logs", bucket, child)
        # ALB access logs support only S3-managed keys.
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-access-logs",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="AES256"
                    )
                )
            ],
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-access-logs",
            bucket=bucket.id,
            rules=[
                abort_incomplete_uploads_rule(),
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-access-logs",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                        days=args.log_retention_days
                    ),
                ),
            ],
            opts=child,
        )
        elb_account = aws.elb.get_service_account_output(opts=pulumi.InvokeOutputOptions(parent=self))
        policy = aws.s3.BucketPolicy(
            f"{name}-access-logs",
            bucket=bucket.id,
            policy=pulumi.Output.all(bucket.arn, elb_account.arn).apply(
                lambda values: access_log_bucket_policy(*values)
            ),
            opts=child,
        )
        return aws.lb.LoadBalancerAccessLogsArgs(bucket=bucket.id, enabled=True), policy
