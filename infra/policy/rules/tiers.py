"""Rules of one stack tier: what prod (and a preview base, which every preview needs) must protect
and serve, what an ephemeral stack (and a thin preview) must let go, and what a thin preview must
leave to its base.

The tier reaches these rules through the policy config (`tier` in `infra/policy/<tier>.json`), so
each acts on its own tier only; `pack.enforcement_config` writes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Literal

from pulumi_policy import (
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from .elb import redirects_to_https
from .shared import (
    ECR_REPOSITORY,
    ECS_CLUSTER,
    KMS_KEY,
    LISTENER,
    LOAD_BALANCER,
    LOG_GROUP,
    NAT_GATEWAY,
    RDS_INSTANCE,
    REPLICATION_GROUP,
    S3_BUCKET,
    SNS_TOPIC,
    Props,
    Rule,
)

Tier = Literal["prod", "dev", "ephemeral", "preview-base", "preview"]
TIERS: tuple[Tier, ...] = ("prod", "dev", "ephemeral", "preview-base", "preview")
# Where each rule acts: the tiers that keep their state, those thrown away, the thin previews.
KEEPS_STATE: tuple[Tier, ...] = ("prod", "preview-base")
THROWN_AWAY: tuple[Tier, ...] = ("ephemeral", "preview")

EPHEMERAL_STACK_DESTROYABLE = "ephemeral-stack-destroyable"
PROD_STATEFUL_PROTECTED = "prod-stateful-protected"
PROD_HTTPS_ONLY = "prod-https-only"
PREVIEW_LEAVES_SHARED_TO_BASE = "preview-leaves-shared-to-base"
# What a thin preview reads from its base and must never create: each would cost a full stack's
# money and minutes, and the base's capacity limits would no longer hold.
BASE_TYPES = frozenset(
    {
        "aws:ec2/vpc:Vpc",
        NAT_GATEWAY,
        RDS_INSTANCE,
        REPLICATION_GROUP,
        LOAD_BALANCER,
        LISTENER,
        "aws:acm/certificate:Certificate",
        ECS_CLUSTER,
        ECR_REPOSITORY,
        SNS_TOPIC,
        "aws:wafv2/webAcl:WebAcl",
        "aws:cloudwatch/dashboard:Dashboard",
    }
)
# What a prod `pulumi destroy` must never take by accident: data, the broker's queue, the public
# address, the images that can be rolled back to, the access logs and media files, the key that
# encrypts them (Security Hub KMS.3: keys are not scheduled for deletion).
STATEFUL_TYPES = frozenset(
    {RDS_INSTANCE, REPLICATION_GROUP, LOAD_BALANCER, ECR_REPOSITORY, S3_BUCKET, KMS_KEY}
)


def _tier(args: ResourceValidationArgs) -> str:
    return str(args.get_config().get("tier", "prod"))


def _deletion_blockers(resource_type: str, props: Props) -> Iterator[str]:
    if resource_type == RDS_INSTANCE:
        if props.get("deletionProtection") is True:
            yield "deletionProtection must be false"
        if props.get("skipFinalSnapshot") is not True:
            yield "skipFinalSnapshot must be true"
    elif resource_type == LOAD_BALANCER and props.get("enableDeletionProtection") is True:
        yield "enableDeletionProtection must be false"
    elif resource_type == ECR_REPOSITORY and props.get("forceDelete") is not True:
        yield "forceDelete must be true (destroy fails while images remain)"
    elif resource_type == LOG_GROUP and props.get("deletionProtectionEnabled") is True:
        yield "deletionProtectionEnabled must be false"
    elif resource_type == S3_BUCKET and props.get("forceDestroy") is not True:
        yield "forceDestroy must be true (destroy fails while objects remain)"


def _validate_destroyable(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if _tier(args) not in THROWN_AWAY:
        return
    if args.opts.protect:
        report("the `protect` resource option must be off", None)
    for message in _deletion_blockers(args.resource_type, args.props):
        report(message, None)


def _validate_protected(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if _tier(args) not in KEEPS_STATE:
        return
    if args.resource_type in STATEFUL_TYPES and not args.opts.protect:
        report(
            "the `protect` resource option must be on: AWS deletion protection is checked only after "
            "`pulumi destroy` has deleted everything around it (set protectResources)",
            None,
        )


def _validate_https_only(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if _tier(args) not in KEEPS_STATE or args.resource_type != LISTENER:
        return
    props = args.props
    if props.get("protocol") != "HTTPS" and not redirects_to_https(props):
        report(
            f"a {props.get('protocol')} listener on port {props.get('port')} serves plain HTTP: prod serves "
            "HTTPS only (set domainName and hostedZoneId, or certificateArn; requireHttps refuses the rest)",
            None,
        )


def _validate_leaves_shared_to_base(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if _tier(args) == "preview" and args.resource_type in BASE_TYPES:
        report(
            f"a thin preview declares a {args.resource_type.rsplit(':', 1)[-1]}: its base owns every one "
            "(network, database server, broker, load balancer and listeners, certificate, cluster, "
            "repository, alarm topic); a change to them belongs in a full-copy pr-N stack",
            None,
        )


def _tier_rule(
    name: str,
    description: str,
    validate: Callable[[ResourceValidationArgs, ReportViolation], None],
    controls: tuple[str, ...] = (),
) -> Rule:
    """A rule that acts on one tier only; the tier reaches it through the policy config."""
    policy = ResourceValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        config_schema=PolicyConfigSchema(
            properties={"tier": {"type": "string", "enum": list(TIERS), "default": "prod"}},
        ),
    )
    return Rule(policy, controls=controls, relaxable=False)


RULES: tuple[Rule, ...] = (
    _tier_rule(
        EPHEMERAL_STACK_DESTROYABLE,
        "Ephemeral stacks and thin previews have nothing that makes `pulumi destroy` fail",
        _validate_destroyable,
    ),
    _tier_rule(
        PROD_STATEFUL_PROTECTED,
        "In prod and a preview base, stateful resources carry `protect`: `pulumi destroy` stops at preview",
        _validate_protected,
    ),
    _tier_rule(
        PROD_HTTPS_ONLY,
        "In prod and a preview base, every listener serves HTTPS or only redirects to it",
        _validate_https_only,
        controls=("ELB.1",),
    ),
    _tier_rule(
        PREVIEW_LEAVES_SHARED_TO_BASE,
        "A thin preview creates nothing its preview base shares",
        _validate_leaves_shared_to_base,
    ),
)
