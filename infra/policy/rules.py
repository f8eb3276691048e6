"""Security and reliability guardrails for every stack of this project, as pulumi-policy rules.

Each rule checks the resource properties the engine sees (camelCase input names; outputs too in
stack rules) and names the AWS Security Hub control it implements, where one exists. Rules that
only cost money or stop `pulumi destroy` are `relaxable`: advisory in dev and ephemeral stacks,
mandatory in prod. Everything else is mandatory everywhere.

The stack tier reaches the pack through policy config: `enforcement_config(tier)` is the content
of `infra/policy/<tier>.json`, which `pulumi preview/up --policy-pack-config` reads.

This module must not construct a `PolicyPack` (that starts a server and blocks): `__main__.py`
does, and tests import the rules from here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

Tier = Literal["prod", "dev", "ephemeral"]
TIERS: tuple[Tier, ...] = ("prod", "dev", "ephemeral")

Props = Mapping[str, Any]
# A resource check yields one message per violation; a stack check yields (urn, message).
ResourceCheck = Callable[[Props], Iterable[str]]
StackCheck = Callable[[Sequence[PolicyResource]], Iterable[tuple[str, str]]]

RDS_INSTANCE = "aws:rds/instance:Instance"
RDS_PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
REPLICATION_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
CACHE_PARAMETER_GROUP = "aws:elasticache/parameterGroup:ParameterGroup"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
ECS_SERVICE = "aws:ecs/service:Service"
ECR_REPOSITORY = "aws:ecr/repository:Repository"
ECR_LIFECYCLE_POLICY = "aws:ecr/lifecyclePolicy:LifecyclePolicy"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
WEB_ACL_ASSOCIATION = "aws:wafv2/webAclAssociation:WebAclAssociation"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SECURITY_GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
NAT_GATEWAY = "aws:ec2/natGateway:NatGateway"
IAM_ROLE = "aws:iam/role:Role"
IAM_ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
IAM_POLICY = "aws:iam/policy:Policy"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
S3_BUCKET = "aws:s3/bucket:Bucket"
S3_PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
S3_BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
S3_VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
S3_ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
KMS_KEY = "aws:kms/key:Key"
SECRET = "aws:secretsmanager/secret:Secret"  # noqa: S105 - a resource type, not a password
SNS_TOPIC = "aws:sns/topic:Topic"
ECS_CLUSTER = "aws:ecs/cluster:Cluster"

LONG_RDS_BACKUP_DAYS = 7
# ELB.17 accepts only these policies; the AWS default ELBSecurityPolicy-TLS13-1-2-2021-06 fails it.
MODERN_TLS_POLICIES = frozenset(
    {
        "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
        "ELBSecurityPolicy-TLS13-1-3-2021-06",
        "ELBSecurityPolicy-TLS13-1-2-Res-FIPS-2023-04",
        "ELBSecurityPolicy-TLS13-1-3-FIPS-2023-04",
        "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09",
        "ELBSecurityPolicy-TLS13-1-3-PQ-2025-09",
        "ELBSecurityPolicy-TLS13-1-2-Res-FIPS-PQ-2025-09",
        "ELBSecurityPolicy-TLS13-1-3-FIPS-PQ-2025-09",
    }
)
INTERNET = frozenset({"0.0.0.0/0", "::/0"})
WEB_PORTS = frozenset({80, 443})
# Plain environment variable names that look like they carry a secret (ECS.8 names the AWS
# credential variables; Trivy AVD-AWS-0036 flags these words in any name).
SECRET_NAME_WORDS = ("SECRET", "PASSWORD", "TOKEN", "KEY")
SECRET_NAMES = frozenset({"ECS_ENGINE_AUTH_DATA"})
URL_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]+@", re.IGNORECASE)
BEAT_COMMAND = ("celery", "beat")


@dataclass(frozen=True)
class Rule:
    """One guardrail: the pulumi-policy policy plus what the docs and the tier config need."""

    policy: ResourceValidationPolicy | StackValidationPolicy
    controls: tuple[str, ...]  # AWS Security Hub control ids; empty where no control exists
    relaxable: bool  # advisory in dev and ephemeral stacks (cost or teardown), mandatory in prod

    @property
    def name(self) -> str:
        return self.policy.name


def _describe(summary: str, controls: Sequence[str]) -> str:
    return f"{summary} [{', '.join(controls)}]" if controls else summary


def resource_rule(
    name: str,
    summary: str,
    controls: Sequence[str],
    resource_types: Iterable[str],
    check: ResourceCheck,
    relaxable: bool = False,
) -> Rule:
    types = frozenset(resource_types)

    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        if args.resource_type in types:
            for message in check(args.props):
                report(message, None)

    policy = ResourceValidationPolicy(name=name, description=_describe(summary, controls), validate=validate)
    return Rule(policy, tuple(controls), relaxable)


def stack_rule(
    name: str, summary: str, controls: Sequence[str], check: StackCheck, relaxable: bool = False
) -> Rule:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        for urn, message in check(args.resources):
            report(message, urn)

    policy = StackValidationPolicy(name=name, description=_describe(summary, controls), validate=validate)
    return Rule(policy, tuple(controls), relaxable)


# --- Helpers ----------------------------------------------------------------------------------
# The analyzer hands policies read-only Mapping/Sequence proxies, not dicts and lists, so the
# helpers test for the abstract types.


def _items(value: Any) -> list[Any]:
    """A property that may be missing, one value, or a list of values, as a list."""
    if value is None:
        return []
    if isinstance(value, str | Mapping) or not isinstance(value, Sequence):
        return [value]
    return list(value)


def _is_present(props: Props, key: str) -> bool:
    # Iterating the keys never reads a value, so this also works for a value that is still
    # unknown during preview (e.g. a generated password).
    return key in list(props)


def _of_type(resources: Sequence[PolicyResource], *types: str) -> list[PolicyResource]:
    return [resource for resource in resources if resource.resource_type in types]


def _parameters(group: PolicyResource) -> dict[str, str]:
    return {str(p["name"]): str(p["value"]) for p in _items(group.props.get("parameters"))}


def _group_named(groups: Sequence[PolicyResource], name: Any) -> PolicyResource | None:
    return next((group for group in groups if name is not None and group.props.get("name") == name), None)


def _containers(task_definition: Props) -> list[Props]:
    definitions = task_definition.get("containerDefinitions")
    return _items(json.loads(definitions) if isinstance(definitions, str) else definitions)


def _each_container(check: Callable[[Props], Iterable[str]]) -> ResourceCheck:
    def check_all(task_definition: Props) -> Iterator[str]:
        for container in _containers(task_definition):
            for problem in check(container):
                yield f"container {container.get('name')!r}: {problem}"

    return check_all


def _port_range(rule: Props) -> tuple[int, int]:
    if str(rule.get("protocol", rule.get("ipProtocol"))) == "-1":
        return 0, 65535
    return int(rule.get("fromPort") or 0), int(rule.get("toPort") or 65535)


@dataclass(frozen=True)
class _Ingress:
    """One ingress permission, whichever of the three Pulumi shapes declared it."""

    urn: str
    group_id: Any
    cidrs: frozenset[str]
    source_groups: frozenset[str]
    other_sources: bool  # prefix lists or `self`
    ports: tuple[int, int]


def _ingress_permissions(resources: Sequence[PolicyResource]) -> Iterator[_Ingress]:
    for group in _of_type(resources, SECURITY_GROUP):
        for rule in _items(group.props.get("ingress")):
            yield _Ingress(
                urn=group.urn,
                group_id=group.props.get("id"),
                cidrs=frozenset(_items(rule.get("cidrBlocks")) + _items(rule.get("ipv6CidrBlocks"))),
                source_groups=frozenset(_items(rule.get("securityGroups"))),
                other_sources=bool(_items(rule.get("prefixListIds")) or rule.get("self")),
                ports=_port_range(rule),
            )
    for rule_resource in _of_type(resources, SECURITY_GROUP_RULE):
        rule = rule_resource.props
        if rule.get("type") == "ingress":
            yield _Ingress(
                urn=rule_resource.urn,
                group_id=rule.get("securityGroupId"),
                cidrs=frozenset(_items(rule.get("cidrBlocks")) + _items(rule.get("ipv6CidrBlocks"))),
                source_groups=frozenset(_items(rule.get("sourceSecurityGroupId"))),
                other_sources=bool(_items(rule.get("prefixListIds")) or rule.get("self")),
                ports=_port_range(rule),
            )
    for rule_resource in _of_type(resources, INGRESS_RULE):
        rule = rule_resource.props
        yield _Ingress(
            urn=rule_resource.urn,
            group_id=rule.get("securityGroupId"),
            cidrs=frozenset(_items(rule.get("cidrIpv4")) + _items(rule.get("cidrIpv6"))),
            source_groups=frozenset(_items(rule.get("referencedSecurityGroupId"))),
            other_sources=bool(rule.get("prefixListId")),
            ports=_port_range(rule),
        )


def _service_security_groups(resources: Sequence[PolicyResource]) -> set[str]:
    return {
        group
        for service in _of_type(resources, ECS_SERVICE)
        for group in _items((service.props.get("networkConfiguration") or {}).get("securityGroups"))
    }


# --- RDS --------------------------------------------------------------------------------------


def _rds_storage_encrypted(db: Props) -> Iterator[str]:
    if db.get("storageEncrypted") is not True:
        yield "storageEncrypted must be true"


def _rds_not_public(db: Props) -> Iterator[str]:
    if db.get("publiclyAccessible") is True:
        yield "publiclyAccessible must be false"


def _rds_backups_on(db: Props) -> Iterator[str]:
    if (db.get("backupRetentionPeriod") or 0) < 1:
        yield "backupRetentionPeriod must be at least 1 day (0 or unset turns automated backups off)"


def _rds_long_backups(db: Props) -> Iterator[str]:
    if (db.get("backupRetentionPeriod") or 0) < LONG_RDS_BACKUP_DAYS:
        yield f"backupRetentionPeriod must be at least {LONG_RDS_BACKUP_DAYS} days"


def _rds_minor_upgrades(db: Props) -> Iterator[str]:
    # The provider default is true, so only an explicit false fails.
    if db.get("autoMinorVersionUpgrade") is False:
        yield "autoMinorVersionUpgrade must not be false"


def _rds_deletion_protection(db: Props) -> Iterator[str]:
    if db.get("deletionProtection") is not True:
        yield "deletionProtection must be true"


def _rds_multi_az(db: Props) -> Iterator[str]:
    if db.get("multiAz") is not True:
        yield "multiAz must be true"


def _rds_force_ssl(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    groups = _of_type(resources, RDS_PARAMETER_GROUP)
    for db in _of_type(resources, RDS_INSTANCE):
        group = _group_named(groups, db.props.get("parameterGroupName"))
        if group is None:
            yield (
                db.urn,
                "parameterGroupName must name a parameter group of this stack that sets rds.force_ssl=1",
            )
        elif _parameters(group).get("rds.force_ssl") != "1":
            yield group.urn, "parameter rds.force_ssl must be 1 (TLS for every connection)"


# --- ElastiCache ------------------------------------------------------------------------------


def _redis_transit_encryption(redis: Props) -> Iterator[str]:
    if redis.get("transitEncryptionEnabled") is not True:
        yield "transitEncryptionEnabled must be true"


def _redis_at_rest_encryption(redis: Props) -> Iterator[str]:
    if redis.get("atRestEncryptionEnabled") is not True:
        yield "atRestEncryptionEnabled must be true"


def _redis_auth(redis: Props) -> Iterator[str]:
    if not _is_present(redis, "authToken") and not _items(redis.get("userGroupIds")):
        yield "set authToken (or RBAC userGroupIds) so clients must authenticate"


def _redis_non_cluster(redis: Props) -> Iterator[str]:
    # Celery's Redis transport uses multi-key commands that Redis Cluster rejects.
    if redis.get("clusterMode") not in (None, "disabled"):
        yield f"clusterMode must be 'disabled', not {redis.get('clusterMode')!r}"
    if (redis.get("numNodeGroups") or 1) > 1:
        yield "numNodeGroups must be 1 (one shard, non-cluster mode)"


def _redis_failover(redis: Props) -> Iterator[str]:
    if redis.get("automaticFailoverEnabled") is not True:
        yield "automaticFailoverEnabled must be true"
    if (redis.get("numCacheClusters") or 1) < 2:
        yield "numCacheClusters must be at least 2 (a replica to fail over to)"


def _redis_noeviction(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    # An evicting broker silently drops queued tasks; the default parameter groups evict.
    groups = _of_type(resources, CACHE_PARAMETER_GROUP)
    for redis in _of_type(resources, REPLICATION_GROUP):
        group = _group_named(groups, redis.props.get("parameterGroupName"))
        if group is None:
            yield (
                redis.urn,
                (
                    "parameterGroupName must name a parameter group of this stack that sets "
                    "maxmemory-policy=noeviction"
                ),
            )
        elif _parameters(group).get("maxmemory-policy") != "noeviction":
            yield group.urn, "parameter maxmemory-policy must be noeviction"


# --- ECS --------------------------------------------------------------------------------------


def _not_privileged(container: Props) -> Iterator[str]:
    if container.get("privileged") is True:
        yield "privileged must not be true"


def _read_only_root(container: Props) -> Iterator[str]:
    if container.get("readonlyRootFilesystem") is not True:
        yield "readonlyRootFilesystem must be true (mount a writable volume where files are written)"


def _non_root_user(container: Props) -> Iterator[str]:
    user = str(container.get("user") or "")
    if user.split(":")[0] in ("", "root", "0"):
        yield f"user must be set to a non-root user, not {user or 'unset'!r}"


def _logs_configured(container: Props) -> Iterator[str]:
    if not (container.get("logConfiguration") or {}).get("logDriver"):
        yield "logConfiguration.logDriver must be set"


def _no_plain_secrets(container: Props) -> Iterator[str]:
    for variable in _items(container.get("environment")):
        name = str(variable.get("name", ""))
        value = str(variable.get("value", ""))
        if name in SECRET_NAMES or any(word in name.upper() for word in SECRET_NAME_WORDS):
            yield f"environment variable {name} looks like a secret: pass it in `secrets` (valueFrom)"
        elif URL_WITH_PASSWORD.match(value):
            yield f"environment variable {name} holds a URL with a password: pass it in `secrets` (valueFrom)"


def _awsvpc(task_definition: Props) -> Iterator[str]:
    if task_definition.get("networkMode") != "awsvpc":
        yield f"networkMode must be 'awsvpc', not {task_definition.get('networkMode')!r}"


def _no_public_ip_behind_nat(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    if not _of_type(resources, NAT_GATEWAY):
        return  # without a NAT, tasks in public subnets need a public IP to reach ECR
    for service in _of_type(resources, ECS_SERVICE):
        if (service.props.get("networkConfiguration") or {}).get("assignPublicIp") is True:
            yield (
                service.urn,
                "networkConfiguration.assignPublicIp must be false: the stack has a NAT gateway",
            )


def _runs_beat(task_definition: PolicyResource) -> bool:
    return any(
        all(word in _items(container.get("command")) for word in BEAT_COMMAND)
        for container in _containers(task_definition.props)
    )


def _single_beat(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    beat_arns = {task.props.get("arn") for task in _of_type(resources, TASK_DEFINITION) if _runs_beat(task)}
    for service in _of_type(resources, ECS_SERVICE):
        if service.props.get("taskDefinition") not in beat_arns:
            continue
        if service.props.get("desiredCount") != 1:
            yield (
                service.urn,
                f"desiredCount of the Beat service must be 1, not {service.props.get('desiredCount')}",
            )
        if service.props.get("deploymentMaximumPercent") != 100:
            yield (
                service.urn,
                "deploymentMaximumPercent of the Beat service must be 100 (never two schedulers)",
            )


# --- ECR --------------------------------------------------------------------------------------


def _scan_on_push(repository: Props) -> Iterator[str]:
    if (repository.get("imageScanningConfiguration") or {}).get("scanOnPush") is not True:
        yield "imageScanningConfiguration.scanOnPush must be true"


def _immutable_tags(repository: Props) -> Iterator[str]:
    if repository.get("imageTagMutability") != "IMMUTABLE":
        yield f"imageTagMutability must be IMMUTABLE, not {repository.get('imageTagMutability')!r}"


def _lifecycle_policy(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    governed = {policy.props.get("repository") for policy in _of_type(resources, ECR_LIFECYCLE_POLICY)}
    for repository in _of_type(resources, ECR_REPOSITORY):
        if repository.props.get("name") not in governed:
            yield repository.urn, "the repository needs an aws.ecr.LifecyclePolicy"


# --- Load balancer ----------------------------------------------------------------------------


def _drop_invalid_headers(lb: Props) -> Iterator[str]:
    if lb.get("dropInvalidHeaderFields") is not True:
        yield "dropInvalidHeaderFields must be true"


def _lb_deletion_protection(lb: Props) -> Iterator[str]:
    if lb.get("enableDeletionProtection") is not True:
        yield "enableDeletionProtection must be true"


def _lb_access_logs(lb: Props) -> Iterator[str]:
    if (lb.get("accessLogs") or {}).get("enabled") is not True:
        yield "accessLogs.enabled must be true (with an S3 bucket)"


def _modern_tls(listener: Props) -> Iterator[str]:
    if listener.get("protocol") == "HTTPS" and listener.get("sslPolicy") not in MODERN_TLS_POLICIES:
        yield f"sslPolicy {listener.get('sslPolicy')!r} is not a TLS 1.3 policy accepted by ELB.17"


def _redirects_to_https(listener: PolicyResource) -> bool:
    actions = _items(listener.props.get("defaultActions"))
    return len(actions) == 1 and (actions[0].get("redirect") or {}).get("protocol") == "HTTPS"


def _http_redirects(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    listeners = _of_type(resources, LISTENER)
    with_https = {
        lst.props.get("loadBalancerArn") for lst in listeners if lst.props.get("protocol") == "HTTPS"
    }
    for listener in listeners:
        if (
            listener.props.get("protocol") == "HTTP"
            and listener.props.get("loadBalancerArn") in with_https
            and not _redirects_to_https(listener)
        ):
            yield listener.urn, "an HTTP listener beside an HTTPS one must only redirect to HTTPS"


def _alb_behind_waf(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    protected = {
        association.props.get("resourceArn") for association in _of_type(resources, WEB_ACL_ASSOCIATION)
    }
    for lb in _of_type(resources, LOAD_BALANCER):
        if lb.props.get("arn") not in protected:
            yield lb.urn, "associate an AWS WAF web ACL with the load balancer (set wafEnabled)"


# --- Security groups --------------------------------------------------------------------------


def _data_stores_only_from_app(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    app_groups = _service_security_groups(resources)
    store_groups: dict[str, str] = {}
    for store in _of_type(resources, RDS_INSTANCE, REPLICATION_GROUP):
        groups = _items(store.props.get("vpcSecurityGroupIds")) + _items(store.props.get("securityGroupIds"))
        if not groups:
            yield store.urn, "attach a dedicated security group (the VPC default group is not restricted)"
        store_groups.update({group: store.urn for group in groups})
    for ingress in _ingress_permissions(resources):
        if ingress.group_id not in store_groups:
            continue
        if ingress.cidrs or ingress.other_sources or not ingress.source_groups <= app_groups:
            yield (
                ingress.urn,
                (
                    f"ingress to the data store security group {ingress.group_id} may only come from the "
                    "application services' security groups"
                ),
            )


def _only_alb_open(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    alb_groups = {
        group for lb in _of_type(resources, LOAD_BALANCER) for group in _items(lb.props.get("securityGroups"))
    }
    for ingress in _ingress_permissions(resources):
        if not ingress.cidrs & INTERNET:
            continue
        low, high = ingress.ports
        if ingress.group_id not in alb_groups:
            yield (
                ingress.urn,
                f"only the load balancer's security group may accept traffic from {sorted(ingress.cidrs)}",
            )
        elif low != high or low not in WEB_PORTS:
            yield (
                ingress.urn,
                f"the load balancer may accept internet traffic on 80 and 443 only, not {low}-{high}",
            )


# --- IAM and logs -----------------------------------------------------------------------------


def _policy_documents(props: Props) -> Iterator[Any]:
    for document in [props.get("policy"), *(p.get("policy") for p in _items(props.get("inlinePolicies")))]:
        if document:
            yield json.loads(document) if isinstance(document, str) else document


def _no_full_admin(props: Props) -> Iterator[str]:
    for document in _policy_documents(props):
        for statement in _items(document.get("Statement")):
            if (
                statement.get("Effect") == "Allow"
                and set(_items(statement.get("Action"))) & {"*", "*:*"}
                and "*" in _items(statement.get("Resource"))
            ):
                yield f"statement {statement.get('Sid', '(no Sid)')} allows every action on every resource"


def _log_retention(log_group: Props) -> Iterator[str]:
    if (log_group.get("retentionInDays") or 0) <= 0:
        yield "retentionInDays must be set (logs would be kept, and billed, forever)"


# --- Production data: the stack's KMS key, buckets, database insight, ECS Exec ----------------

# The RDS Enhanced Monitoring intervals that collect metrics (0 turns it off).
MONITORING_INTERVALS = frozenset({1, 5, 10, 15, 30, 60})
DECRYPT_ACTIONS = frozenset({"kms:Decrypt", "kms:ReEncryptFrom", "kms:*", "kms:Decrypt*", "kms:ReEncrypt*"})


def _key_rotation(key: Props) -> Iterator[str]:
    if key.get("enableKeyRotation") is not True:
        yield "enableKeyRotation must be true"


def _statements(policy: Any) -> list[Any]:
    document = json.loads(policy) if isinstance(policy, str) else policy
    return _items((document or {}).get("Statement"))


def _key_not_public(key: Props) -> Iterator[str]:
    for statement in _statements(key.get("policy")):
        principal = statement.get("Principal")
        anyone = principal == "*" or (isinstance(principal, Mapping) and "*" in _items(principal.get("AWS")))
        if statement.get("Effect") == "Allow" and anyone and not statement.get("Condition"):
            yield f"statement {statement.get('Sid', '(no Sid)')} lets anyone use the key"


def _no_decrypt_on_all_keys(props: Props) -> Iterator[str]:
    for document in _policy_documents(props):
        for statement in _items(document.get("Statement")):
            if (
                statement.get("Effect") == "Allow"
                and set(_items(statement.get("Action"))) & DECRYPT_ACTIONS
                and "*" in _items(statement.get("Resource"))
            ):
                sid = statement.get("Sid", "(no Sid)")
                yield f"statement {sid} decrypts with every KMS key: name the key"


def _bucket_ids(bucket: PolicyResource) -> set[Any]:
    return {bucket.props.get("id"), bucket.props.get("bucket")} - {None}


def _settings_of(resources: Sequence[PolicyResource], setting_type: str) -> dict[Any, PolicyResource]:
    """A bucket's settings resources (public access block, policy, ...) by the bucket they name."""
    return {setting.props.get("bucket"): setting for setting in _of_type(resources, setting_type)}


def _buckets_not_public(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    blocks = _settings_of(resources, S3_PUBLIC_ACCESS_BLOCK)
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    for bucket in _of_type(resources, S3_BUCKET):
        block = next((blocks[i] for i in _bucket_ids(bucket) if i in blocks), None)
        if block is None:
            yield bucket.urn, "the bucket needs an aws.s3.BucketPublicAccessBlock"
        elif not all(block.props.get(flag) is True for flag in flags):
            yield block.urn, f"{', '.join(flags)} must all be true"


def _denies_plain_http(policy: PolicyResource) -> bool:
    return any(
        statement.get("Effect") == "Deny"
        and (statement.get("Condition") or {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        for statement in _statements(policy.props.get("policy"))
    )


def _buckets_tls_only(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    policies = _settings_of(resources, S3_BUCKET_POLICY)
    for bucket in _of_type(resources, S3_BUCKET):
        policy = next((policies[i] for i in _bucket_ids(bucket) if i in policies), None)
        if policy is None or not _denies_plain_http(policy):
            yield bucket.urn, "the bucket policy must deny requests without TLS (aws:SecureTransport false)"


def _access_log_buckets(resources: Sequence[PolicyResource]) -> set[Any]:
    """Buckets a load balancer logs to, or whose policy lets ELB log delivery write (ALB access
    logs support only S3-managed keys, and nobody edits a log)."""
    logged_to = {
        (lb.props.get("accessLogs") or {}).get("bucket")
        for lb in _of_type(resources, LOAD_BALANCER)
        if (lb.props.get("accessLogs") or {}).get("enabled")
    }
    for policy in _of_type(resources, S3_BUCKET_POLICY):
        principals = json.dumps(
            [statement.get("Principal") for statement in _statements(policy.props.get("policy"))]
        )
        if "logdelivery.elasticloadbalancing.amazonaws.com" in principals:
            logged_to.add(policy.props.get("bucket"))
    return logged_to


def _app_buckets(resources: Sequence[PolicyResource]) -> list[PolicyResource]:
    """Buckets of application data: every bucket but the load balancer's access logs."""
    logs = _access_log_buckets(resources)
    return [bucket for bucket in _of_type(resources, S3_BUCKET) if not _bucket_ids(bucket) & logs]


def _buckets_versioned(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    versionings = _settings_of(resources, S3_VERSIONING)
    for bucket in _app_buckets(resources):
        versioning = next((versionings[i] for i in _bucket_ids(bucket) if i in versionings), None)
        status = ((versioning.props.get("versioningConfiguration") or {}) if versioning else {}).get("status")
        if status != "Enabled":
            yield bucket.urn, "versioning must be Enabled (aws.s3.BucketVersioning)"


def _uses_key(keys: set[Any], value: Any) -> bool:
    return value is not None and value in keys


def _unkeyed(resources: Sequence[PolicyResource], keys: set[Any]) -> Iterator[PolicyResource]:
    """Data at rest not encrypted with one of the stack's keys."""
    for resource in _of_type(resources, RDS_INSTANCE, REPLICATION_GROUP, SECRET, LOG_GROUP):
        if not _uses_key(keys, resource.props.get("kmsKeyId")):
            yield resource
    for topic in _of_type(resources, SNS_TOPIC):
        if not _uses_key(keys, topic.props.get("kmsMasterKeyId")):
            yield topic
    for repository in _of_type(resources, ECR_REPOSITORY):
        encryption = _items(repository.props.get("encryptionConfigurations"))
        if not encryption or not _uses_key(keys, encryption[0].get("kmsKey")):
            yield repository
    encryptions = _settings_of(resources, S3_ENCRYPTION)
    for bucket in _app_buckets(resources):
        setting = next((encryptions[i] for i in _bucket_ids(bucket) if i in encryptions), None)
        rules = _items(setting.props.get("rules")) if setting else []
        default = (rules[0].get("applyServerSideEncryptionByDefault") or {}) if rules else {}
        if not _uses_key(keys, default.get("kmsMasterKeyId")):
            yield bucket


def _customer_managed_key(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    keys = {key.props.get("arn") for key in _of_type(resources, KMS_KEY)} - {None}
    for resource in _unkeyed(resources, keys):
        yield resource.urn, "encrypt it with the stack's customer-managed KMS key (customerManagedKey)"


def _rds_performance_insights(db: Props) -> Iterator[str]:
    if db.get("performanceInsightsEnabled") is not True:
        yield "performanceInsightsEnabled must be true"
    elif db.get("kmsKeyId") and db.get("performanceInsightsKmsKeyId") != db.get("kmsKeyId"):
        yield "performanceInsightsKmsKeyId must be the key that encrypts the storage"


def _rds_enhanced_monitoring(db: Props) -> Iterator[str]:
    if db.get("monitoringInterval") not in MONITORING_INTERVALS:
        yield f"monitoringInterval must be one of {sorted(MONITORING_INTERVALS)}"
    if not _is_present(db, "monitoringRoleArn"):
        yield "monitoringRoleArn must name the role RDS publishes the metrics with"


def _exec_audit_logging(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    log_groups = {group.props.get("name") for group in _of_type(resources, LOG_GROUP)}
    for cluster in _of_type(resources, ECS_CLUSTER):
        settings = (cluster.props.get("configuration") or {}).get("executeCommandConfiguration") or {}
        logging = settings.get("logConfiguration") or {}
        if settings.get("logging") != "OVERRIDE" or logging.get("cloudWatchLogGroupName") not in log_groups:
            yield cluster.urn, "ECS Exec sessions must be logged (OVERRIDE) to a log group of this stack"
        elif settings.get("kmsKeyId") and logging.get("cloudWatchEncryptionEnabled") is not True:
            yield cluster.urn, "with a KMS key, cloudWatchEncryptionEnabled must be true"


# --- Ephemeral stacks -------------------------------------------------------------------------

EPHEMERAL_STACK_DESTROYABLE = "ephemeral-stack-destroyable"


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
    if args.get_config().get("tier", "prod") != "ephemeral":
        return
    if args.opts.protect:
        report("the `protect` resource option must be off", None)
    for message in _deletion_blockers(args.resource_type, args.props):
        report(message, None)


PROD_STATEFUL_PROTECTED = "prod-stateful-protected"
# What a prod `pulumi destroy` must never take by accident: data, the broker's queue, the public
# address, the images that can be rolled back to, the access logs and media files, the key that
# encrypts them (Security Hub KMS.3: keys are not scheduled for deletion).
STATEFUL_TYPES = frozenset(
    {RDS_INSTANCE, REPLICATION_GROUP, LOAD_BALANCER, ECR_REPOSITORY, S3_BUCKET, KMS_KEY}
)


def _validate_protected(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.get_config().get("tier", "prod") != "prod":
        return
    if args.resource_type in STATEFUL_TYPES and not args.opts.protect:
        report(
            "the `protect` resource option must be on: AWS deletion protection is checked only after "
            "`pulumi destroy` has deleted everything around it (set protectResources)",
            None,
        )


PROD_HTTPS_ONLY = "prod-https-only"


def _validate_https_only(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.get_config().get("tier", "prod") != "prod" or args.resource_type != LISTENER:
        return
    props = args.props
    actions = _items(props.get("defaultActions"))
    redirects = len(actions) == 1 and (actions[0].get("redirect") or {}).get("protocol") == "HTTPS"
    if props.get("protocol") != "HTTPS" and not redirects:
        report(
            f"a {props.get('protocol')} listener on port {props.get('port')} serves plain HTTP: prod serves "
            "HTTPS only (set domainName and hostedZoneId, or certificateArn; requireHttps refuses the rest)",
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


_ephemeral_rule = _tier_rule(
    EPHEMERAL_STACK_DESTROYABLE,
    "Ephemeral stacks have nothing that makes `pulumi destroy` fail",
    _validate_destroyable,
)
_prod_protected_rule = _tier_rule(
    PROD_STATEFUL_PROTECTED,
    "In prod, stateful resources carry `protect`, so `pulumi destroy` stops at preview",
    _validate_protected,
)
_prod_https_rule = _tier_rule(
    PROD_HTTPS_ONLY,
    "In prod, every listener serves HTTPS or only redirects to it",
    _validate_https_only,
    controls=("ELB.1",),
)
TIER_RULES = (EPHEMERAL_STACK_DESTROYABLE, PROD_STATEFUL_PROTECTED, PROD_HTTPS_ONLY)


RULES: tuple[Rule, ...] = (
    # RDS
    resource_rule(
        "rds-storage-encrypted",
        "RDS storage is encrypted at rest",
        ["RDS.3"],
        [RDS_INSTANCE],
        _rds_storage_encrypted,
    ),
    resource_rule(
        "rds-not-public", "RDS is not publicly accessible", ["RDS.2"], [RDS_INSTANCE], _rds_not_public
    ),
    stack_rule("rds-force-ssl", "RDS PostgreSQL refuses connections without TLS", ["RDS.38"], _rds_force_ssl),
    resource_rule(
        "rds-backups-enabled", "RDS automated backups are on", ["RDS.11"], [RDS_INSTANCE], _rds_backups_on
    ),
    resource_rule(
        "rds-backup-retention-7-days",
        "RDS keeps automated backups for at least 7 days",
        ["RDS.11"],
        [RDS_INSTANCE],
        _rds_long_backups,
        relaxable=True,
    ),
    resource_rule(
        "rds-auto-minor-version-upgrade",
        "RDS applies minor engine upgrades automatically",
        ["RDS.13"],
        [RDS_INSTANCE],
        _rds_minor_upgrades,
    ),
    resource_rule(
        "rds-deletion-protection",
        "RDS has deletion protection",
        ["RDS.8"],
        [RDS_INSTANCE],
        _rds_deletion_protection,
        relaxable=True,
    ),
    resource_rule(
        "rds-multi-az", "RDS runs Multi-AZ", ["RDS.5"], [RDS_INSTANCE], _rds_multi_az, relaxable=True
    ),
    # ElastiCache
    resource_rule(
        "elasticache-transit-encryption",
        "Redis encrypts traffic in transit",
        ["ElastiCache.5"],
        [REPLICATION_GROUP],
        _redis_transit_encryption,
    ),
    resource_rule(
        "elasticache-at-rest-encryption",
        "Redis encrypts data at rest",
        ["ElastiCache.4"],
        [REPLICATION_GROUP],
        _redis_at_rest_encryption,
    ),
    resource_rule(
        "elasticache-auth",
        "Redis requires authentication",
        ["ElastiCache.6"],
        [REPLICATION_GROUP],
        _redis_auth,
    ),
    resource_rule(
        "elasticache-non-cluster-mode",
        "Redis runs in non-cluster mode (the Celery transport needs it)",
        [],
        [REPLICATION_GROUP],
        _redis_non_cluster,
    ),
    stack_rule(
        "elasticache-noeviction", "Redis never evicts keys (queued tasks would vanish)", [], _redis_noeviction
    ),
    resource_rule(
        "elasticache-automatic-failover",
        "Redis has a replica and automatic failover",
        ["ElastiCache.3"],
        [REPLICATION_GROUP],
        _redis_failover,
        relaxable=True,
    ),
    # ECS
    resource_rule(
        "ecs-not-privileged",
        "ECS containers are not privileged",
        ["ECS.4"],
        [TASK_DEFINITION],
        _each_container(_not_privileged),
    ),
    resource_rule(
        "ecs-read-only-root-filesystem",
        "ECS containers have a read-only root file system",
        ["ECS.5"],
        [TASK_DEFINITION],
        _each_container(_read_only_root),
    ),
    resource_rule(
        "ecs-non-root-user",
        "ECS containers run as a non-root user",
        ["ECS.20"],
        [TASK_DEFINITION],
        _each_container(_non_root_user),
    ),
    resource_rule(
        "ecs-awsvpc-network-mode",
        "ECS tasks use the awsvpc network mode",
        ["ECS.17"],
        [TASK_DEFINITION],
        _awsvpc,
    ),
    resource_rule(
        "ecs-log-configuration",
        "ECS containers send their logs somewhere",
        ["ECS.9"],
        [TASK_DEFINITION],
        _each_container(_logs_configured),
    ),
    resource_rule(
        "ecs-no-secrets-in-environment",
        "ECS containers get secrets through `secrets`, never `environment`",
        ["ECS.8"],
        [TASK_DEFINITION],
        _each_container(_no_plain_secrets),
    ),
    stack_rule(
        "ecs-no-public-ip-behind-nat",
        "ECS tasks get no public IP when a NAT gateway exists",
        ["ECS.2"],
        _no_public_ip_behind_nat,
    ),
    stack_rule(
        "ecs-single-beat", "Celery Beat runs as exactly one task, also during deploys", [], _single_beat
    ),
    # ECR
    resource_rule("ecr-scan-on-push", "ECR scans images on push", ["ECR.1"], [ECR_REPOSITORY], _scan_on_push),
    resource_rule(
        "ecr-immutable-tags", "ECR image tags are immutable", ["ECR.2"], [ECR_REPOSITORY], _immutable_tags
    ),
    stack_rule(
        "ecr-lifecycle-policy", "ECR repositories have a lifecycle policy", ["ECR.3"], _lifecycle_policy
    ),
    # Load balancer
    resource_rule(
        "alb-drop-invalid-headers",
        "The ALB drops invalid HTTP headers",
        ["ELB.4"],
        [LOAD_BALANCER],
        _drop_invalid_headers,
    ),
    stack_rule(
        "alb-http-redirects-to-https",
        "HTTP redirects to HTTPS when a certificate is configured",
        ["ELB.1"],
        _http_redirects,
    ),
    resource_rule(
        "alb-modern-tls-policy",
        "HTTPS listeners use a TLS 1.3 security policy",
        ["ELB.17"],
        [LISTENER],
        _modern_tls,
    ),
    resource_rule(
        "alb-deletion-protection",
        "The ALB has deletion protection",
        ["ELB.6"],
        [LOAD_BALANCER],
        _lb_deletion_protection,
        relaxable=True,
    ),
    resource_rule(
        "alb-access-logs",
        "The ALB writes access logs",
        ["ELB.5"],
        [LOAD_BALANCER],
        _lb_access_logs,
        relaxable=True,
    ),
    stack_rule(
        "alb-waf",
        "An AWS WAF web ACL filters the ALB's requests",
        ["ELB.16"],
        _alb_behind_waf,
        relaxable=True,
    ),
    # Network
    stack_rule(
        "sg-data-stores-only-from-app",
        "PostgreSQL and Redis accept connections from the app only",
        [],
        _data_stores_only_from_app,
    ),
    stack_rule(
        "sg-only-alb-open-to-internet",
        "Only the ALB accepts internet traffic, on 80 and 443",
        ["EC2.18", "EC2.19"],
        _only_alb_open,
    ),
    # IAM and logs
    resource_rule(
        "iam-no-full-admin",
        "No IAM policy allows every action on every resource",
        ["IAM.1"],
        [IAM_ROLE, IAM_ROLE_POLICY, IAM_POLICY],
        _no_full_admin,
    ),
    resource_rule(
        "log-group-retention", "Log groups expire their logs", ["CloudWatch.16"], [LOG_GROUP], _log_retention
    ),
    resource_rule(
        "iam-no-decrypt-with-every-key",
        "No IAM policy decrypts with every KMS key",
        ["KMS.1", "KMS.2"],
        [IAM_ROLE, IAM_ROLE_POLICY, IAM_POLICY],
        _no_decrypt_on_all_keys,
    ),
    # KMS, S3, database insight, ECS Exec
    resource_rule("kms-key-rotation", "KMS keys rotate yearly", ["KMS.4"], [KMS_KEY], _key_rotation),
    resource_rule(
        "kms-key-not-public", "KMS key policies allow no anonymous use", ["KMS.5"], [KMS_KEY], _key_not_public
    ),
    stack_rule(
        "customer-managed-key",
        "The stack's own KMS key encrypts its database, broker, secrets, logs, topic, media and images",
        ["ECR.5"],
        _customer_managed_key,
        relaxable=True,
    ),
    stack_rule(
        "s3-bucket-not-public",
        "S3 buckets block every kind of public access",
        ["S3.1", "S3.8"],
        _buckets_not_public,
    ),
    stack_rule("s3-tls-only", "S3 buckets refuse requests without TLS", ["S3.5"], _buckets_tls_only),
    stack_rule(
        "s3-versioning",
        "Application data buckets keep versions of overwritten and deleted objects",
        ["S3.14"],
        _buckets_versioned,
        relaxable=True,
    ),
    resource_rule(
        "rds-performance-insights",
        "RDS Performance Insights is on, encrypted with the storage's key",
        [],
        [RDS_INSTANCE],
        _rds_performance_insights,
        relaxable=True,
    ),
    resource_rule(
        "rds-enhanced-monitoring",
        "RDS Enhanced Monitoring is on",
        ["RDS.6"],
        [RDS_INSTANCE],
        _rds_enhanced_monitoring,
        relaxable=True,
    ),
    stack_rule(
        "ecs-exec-audit-logging",
        "ECS Exec sessions are recorded in a log group of the stack",
        [],
        _exec_audit_logging,
    ),
    _ephemeral_rule,
    _prod_protected_rule,
    _prod_https_rule,
)

RELAXABLE_RULES = frozenset(rule.name for rule in RULES if rule.relaxable)


def policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    return [rule.policy for rule in RULES]


def enforcement_config(tier: Tier) -> dict[str, Any]:
    """The policy config for a stack tier: the content of `infra/policy/<tier>.json`."""
    config: dict[str, Any] = {"all": EnforcementLevel.MANDATORY.value}
    if tier != "prod":
        config.update({name: EnforcementLevel.ADVISORY.value for name in sorted(RELAXABLE_RULES)})
    for name in TIER_RULES:
        config[name] = {"enforcementLevel": EnforcementLevel.MANDATORY.value, "tier": tier}
    return config


def write_enforcement_configs() -> None:
    """Regenerates infra/policy/<tier>.json from the rules (tests fail while they differ)."""
    directory = Path(__file__).resolve().parent
    for tier in TIERS:
        text = json.dumps(enforcement_config(tier), indent=2) + "\n"
        (directory / f"{tier}.json").write_text(text)


if __name__ == "__main__":
    write_enforcement_configs()
