"""A thin preview: one pull request on a preview base, with only what is its own.

base outputs (StackReference) -> its database URL (role and database `pr_N`, a random password) and
the base broker's URL, in its own secrets -> the capacity check (a full base refuses the preview
before anything of it touches the base) -> `PreviewTenant` (role, database, broker keys, made by the
base's tenant task; infra/preview/tenant.py), while its image is built or promoted into the base's
repository -> the release (migrations, once the tenant and the image exist) -> its target group
(a fast health check) and host-header rule on the base's HTTPS listener -> one service whose one
Spot task runs web, a worker on every queue and Beat (infra/preview/app_service.py) -> outputs.
No VPC, database server, broker, load balancer, firewall or dashboard of its own; every Redis key
it uses starts with `pr-N:` (REDIS_KEY_PREFIX).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from infra import app_contract
from infra.data.secrets import AppSecrets, AppSecretsArgs
from infra.data.urls import database_url
from infra.image.image import AppImage, AppImageArgs
from infra.naming import StackContext, StackNames
from infra.network.network import AZ_COUNT
from infra.outputs import StackOutput
from infra.preview.app_service import PreviewApp, PreviewAppArgs
from infra.preview.capacity import PreviewCapacity
from infra.preview.priority import rule_priority
from infra.preview.settings import ThinPreviewSettings
from infra.preview.tenant import TENANT_TIMEOUT_SECONDS, PreviewTenant, preview_secret_prefix
from infra.release.release import ReleasedStack, release_phase
from infra.service_outputs import export_services
from infra.services.fargate import FargateTask, Placement, TaskRuntime
from infra.services.runtime import RuntimeSettings, TaskData, task_runtime
from infra.web.load_balancer import HealthCheckTiming, WebTargets, web_target_group

# One web task and no traffic to protect: the task is in service 10 s after it answers, not 30 s.
PREVIEW_HEALTH_CHECK = HealthCheckTiming(interval_seconds=5, timeout_seconds=4, healthy_threshold=2)


class PreviewBase:
    """The base's outputs (infra/preview/base.py), as this preview reads them."""

    def __init__(self, stack_name: str) -> None:
        self._reference = pulumi.StackReference("preview-base", stack_name=stack_name)

    def __getitem__(self, output: StackOutput) -> pulumi.Output[Any]:
        return self._reference.require_output(output.value)

    def placement(self) -> Placement:
        subnets = self[StackOutput.SERVICE_SUBNET_IDS]

        def subnet(index: int) -> pulumi.Output[str]:
            return subnets.apply(lambda ids: str(ids[index]))

        return Placement(
            self[StackOutput.CLUSTER_ARN],
            [subnet(index) for index in range(AZ_COUNT)],
            [self[StackOutput.APP_SECURITY_GROUP_ID]],
            self[StackOutput.ASSIGN_PUBLIC_IP],
        )


@dataclasses.dataclass(frozen=True)
class PreviewParts:
    """What the preview's tasks share: its settings, its stack, its base, the runtime and placement."""

    settings: ThinPreviewSettings
    stack: StackContext
    base: PreviewBase
    runtime: TaskRuntime
    placement: Placement


def wire_preview(settings: ThinPreviewSettings, stack: StackContext) -> None:
    preview, names, aws_only = settings.preview, stack.names, stack.opts
    base = PreviewBase(preview.of)
    host = base[StackOutput.PREVIEW_DOMAIN].apply(lambda domain: f"pr-{preview.number}.{domain}")
    secrets, image = secrets_and_image(settings, stack, base)
    runtime = task_runtime(
        RuntimeSettings(
            # Served only over HTTPS, under the base's wildcard certificate.
            dataclasses.replace(settings.app, https=True),
            settings.logs.retention_days,
            settings.image.cpu_architecture,
            keep_previous_revisions=False,
        ),
        names,
        image,
        secrets.arns,
        host.apply(lambda name: [name]),
        stack.cloud,
        TaskData(
            "",  # no media bucket: uploads stay in the task (app_contract.MEDIA_BUCKET)
            StackNames(names.project, preview.base_stack or "").database,
            secrets.fingerprint,
            {"exec": base[StackOutput.EXEC_TASK_POLICY]},  # `infra.ops shell` on the base's cluster
        ),
    )
    placement = base.placement()
    parts = PreviewParts(settings, stack, base, runtime, placement)
    capacity = capacity_check(settings, stack, base)
    tenant = tenant_on_base(parts, secrets, capacity)
    migrate, release = release_phase(
        ReleasedStack(
            settings.release, settings.workers, settings.beat, settings.web.deployment, settings.web.size
        ),
        runtime,
        placement,
        image,
        stack.cloud.region,
        [secrets, tenant],
        aws_only,
    )
    targets, rule = route(settings, stack, base, host, capacity)
    services(parts, targets.target_group_arns[0], [secrets, tenant, release], rule, migrate)
    pulumi.export(StackOutput.WEB_URL, host.apply(lambda name: f"https://{name}"))
    pulumi.export(StackOutput.IMAGE_REF, image.image_ref)
    pulumi.export(StackOutput.RELEASE, release.record)
    pulumi.export(StackOutput.SECRET_ARNS, secrets.arns)
    for output in BASE_OUTPUTS_REPEATED:
        pulumi.export(output, base[output])


def secrets_and_image(
    settings: ThinPreviewSettings, stack: StackContext, base: PreviewBase
) -> tuple[AppSecrets, AppImage]:
    """Its own DATABASE_URL (role and database pr_N on the base's server, a new password) and the
    base broker's REDIS_URL, in its own secrets; its image by digest in the base's repository."""
    preview, aws_only = settings.preview, stack.opts
    password = random.RandomPassword("tenant-password", length=40, special=False, opts=aws_only)
    tenant_url: pulumi.Output[str] = pulumi.Output.secret(
        pulumi.Output.all(password.result, base[StackOutput.DB_ADDRESS], base[StackOutput.DB_PORT]).apply(
            lambda values: database_url(
                preview.tenant_name, values[0], values[1], int(values[2]), preview.tenant_name
            )
        )
    )
    secrets = AppSecrets(
        "secrets",
        AppSecretsArgs(
            tenant_url,
            base[StackOutput.BROKER_URL],
            settings.email_url,
            ephemeral=True,
            # The base's tenant task reads the DATABASE_URL secret by this prefix.
            name_prefix=preview_secret_prefix(stack.names.project, preview.number or 0),
        ),
        aws_only,
    )
    image = AppImage(
        "image",
        AppImageArgs(
            settings.image,
            settings.project_root,
            protect=False,
            shared_repository=base[StackOutput.ECR_REPOSITORY_NAME],
            cache_from=base[StackOutput.IMAGE_REF],
        ),
        aws_only,
    )
    return secrets, image


# The base's outputs a preview repeats, so `python -m infra.ops` and the workflows read a preview
# like any stack; not `dbInstanceIdentifier`: `infra.ops restore` of a preview must not restore
# the whole shared server.
BASE_OUTPUTS_REPEATED = (
    StackOutput.CLUSTER_NAME,
    StackOutput.CLUSTER_ARN,
    StackOutput.ALB_DNS_NAME,
    StackOutput.ECR_REPOSITORY_URL,
    StackOutput.SERVICE_SUBNET_IDS,
    StackOutput.APP_SECURITY_GROUP_ID,
    StackOutput.ASSIGN_PUBLIC_IP,
    StackOutput.ALARM_TOPIC_ARN,
    StackOutput.EXEC_AUDIT_LOG_GROUP_NAME,
)


def tenant_on_base(parts: PreviewParts, secrets: AppSecrets, capacity: PreviewCapacity) -> PreviewTenant:
    """Runs the base's tenant task as this preview: create on the first `pulumi up`, drop on
    `pulumi destroy`. It needs the preview's DATABASE_URL secret and a base with room, not the
    preview's image, so it runs while the image builds or is promoted."""
    settings, stack, base, placement = parts.settings, parts.stack, parts.base, parts.placement
    return PreviewTenant(
        "tenant",
        {
            "tenant": settings.preview.tenant_name,
            "connection_limit": settings.preview.connection_limit,
            "database_url_secret": secrets.arns[app_contract.DATABASE_URL],
            "key_prefix": settings.preview.redis_key_prefix,
            "cluster": placement.cluster_arn,
            "task_definition_arn": base[StackOutput.TENANT_TASK_DEFINITION_ARN],
            "container_name": base[StackOutput.TENANT_CONTAINER_NAME],
            "subnet_ids": list(placement.subnet_ids),
            "security_group_ids": list(placement.security_group_ids),
            "assign_public_ip": placement.assign_public_ip,
            "log_group_name": base[StackOutput.TENANT_LOG_GROUP_NAME],
            "region": stack.cloud.region,
            "timeout_seconds": TENANT_TIMEOUT_SECONDS,
        },
        # The secrets component: the engine waits for its secrets and their versions.
        pulumi.ResourceOptions.merge(stack.opts, pulumi.ResourceOptions(depends_on=[secrets, capacity])),
    )


def capacity_check(settings: ThinPreviewSettings, stack: StackContext, base: PreviewBase) -> PreviewCapacity:
    """Refuses this preview on a full base before anything of it touches the base."""
    return PreviewCapacity(
        "capacity",
        {
            "listener_arn": base[StackOutput.PREVIEW_LISTENER_ARN],
            "capacity": base[StackOutput.PREVIEW_CAPACITY],
            "base_connection_limit": base[StackOutput.PREVIEW_CONNECTION_LIMIT],
            "connection_limit": settings.preview.connection_limit,
            "region": stack.cloud.region,
        },
        stack.opts,
    )


def route(
    settings: ThinPreviewSettings,
    stack: StackContext,
    base: PreviewBase,
    host: pulumi.Output[str],
    capacity: PreviewCapacity,
) -> tuple[WebTargets, aws.lb.ListenerRule]:
    """The preview's target group and its host-header rule on the base's HTTPS listener."""
    preview = settings.preview
    after_check = pulumi.ResourceOptions.merge(stack.opts, pulumi.ResourceOptions(depends_on=[capacity]))
    target_group = web_target_group(
        "web-targets",
        base[StackOutput.VPC_ID],
        settings.web.deregistration_delay_seconds,
        after_check,
        PREVIEW_HEALTH_CHECK,
    )
    rule = aws.lb.ListenerRule(
        "web-rule",
        listener_arn=base[StackOutput.PREVIEW_LISTENER_ARN],
        priority=rule_priority(preview.number or 0),
        actions=[aws.lb.ListenerRuleActionArgs(type="forward", target_group_arn=target_group.arn)],
        conditions=[
            aws.lb.ListenerRuleConditionArgs(
                host_header=aws.lb.ListenerRuleConditionHostHeaderArgs(values=[host])
            )
        ],
        opts=after_check,
    )
    targets = WebTargets(
        listener_arn=base[StackOutput.PREVIEW_LISTENER_ARN],
        load_balancer_arn_suffix=base[StackOutput.LOAD_BALANCER_ARN_SUFFIX],
        target_group_arns=[target_group.arn],
        target_group_arn_suffixes=[target_group.arn_suffix],
    )
    return targets, rule


def services(
    parts: PreviewParts,
    target_group_arn: pulumi.Input[str],
    wait_for: list[pulumi.Resource],
    rule: aws.lb.ListenerRule,
    migrate: FargateTask,
) -> None:
    """The preview's one app service (web, a worker, Beat) behind its rule, after the release."""
    settings, runtime, placement = parts.settings, parts.runtime, parts.placement
    app = PreviewApp(
        "preview-app",
        PreviewAppArgs(
            settings.web,
            settings.workers,
            settings.beat,
            runtime,
            placement,
            parts.stack.names,
            parts.stack.cloud,
            target_group_arn,
            depends_on=[*wait_for, rule],
        ),
        parts.stack.opts,
    )
    export_services(app.role_services(), migrate)
