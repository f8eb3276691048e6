"""The policy pack (infra/policy) on the program's real dev, prod and ephemeral runs.

Positive: every stack passes every rule that is mandatory for its tier. Negative: for each rule,
one input of one recorded resource is changed the way a careless edit would change it, and exactly
that rule must fire, so no rule can pass vacuously.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from infra.policy.rules import (
    CACHE_PARAMETER_GROUP,
    ECR_LIFECYCLE_POLICY,
    ECR_REPOSITORY,
    ECS_CLUSTER,
    ECS_SERVICE,
    EPHEMERAL_STACK_DESTROYABLE,
    IAM_ROLE_POLICY,
    KMS_KEY,
    LISTENER,
    LOAD_BALANCER,
    LOG_GROUP,
    PROD_HTTPS_ONLY,
    PROD_STATEFUL_PROTECTED,
    RDS_INSTANCE,
    RDS_PARAMETER_GROUP,
    RELAXABLE_RULES,
    REPLICATION_GROUP,
    RULES,
    S3_BUCKET,
    S3_BUCKET_POLICY,
    S3_PUBLIC_ACCESS_BLOCK,
    S3_VERSIONING,
    SECRET,
    SECURITY_GROUP,
    TASK_DEFINITION,
    TIERS,
    WEB_ACL_ASSOCIATION,
    Tier,
    enforcement_config,
)
from testkit.program import ProgramRun, RecordedResource, run_program
from tests.infra.policy.policy_bridge import Violation, evaluate, outputs, tier_config

# The resource types the rules are about; a stack without them would pass vacuously.
CHECKED_TYPES = (
    RDS_INSTANCE,
    RDS_PARAMETER_GROUP,
    REPLICATION_GROUP,
    CACHE_PARAMETER_GROUP,
    TASK_DEFINITION,
    ECS_SERVICE,
    ECR_REPOSITORY,
    ECR_LIFECYCLE_POLICY,
    LOAD_BALANCER,
    LISTENER,
    SECURITY_GROUP,
    LOG_GROUP,
    S3_BUCKET,
    ECS_CLUSTER,
)
DOCS = Path(__file__).resolve().parents[3] / "docs" / "policy.md"


# Runs of the real program: the three stacks of the session fixtures (prod with the certificate it
# issues for its domain), prod with a certificate the user brings, and an ephemeral stack with
# HTTPS (where an HTTP listener that forwards breaks the redirect rule alone, not prod's HTTPS rule).
TIER_OF_RUN: dict[str, Tier] = {
    "prod": "prod",
    "prod-https": "prod",
    "dev": "dev",
    "ephemeral": "ephemeral",
    "ephemeral-https": "ephemeral",
}
CERTIFICATE_ARN = "arn:aws:acm:us-east-1:123456789012:certificate/web"


@pytest.fixture(scope="session")
def runs(request: pytest.FixtureRequest) -> dict[str, ProgramRun]:
    return {
        "prod": request.getfixturevalue("prod_run"),
        "prod-https": run_program("prod", {"certificateArn": CERTIFICATE_ARN}),
        "dev": request.getfixturevalue("dev_run"),
        "ephemeral": request.getfixturevalue("ephemeral_run"),
        "ephemeral-https": request.getfixturevalue("custom_run"),
    }


@pytest.fixture(scope="session")
def baseline(runs: dict[str, ProgramRun]) -> dict[str, list[Violation]]:
    return {name: evaluate(run.resources, tier_config(TIER_OF_RUN[name])) for name, run in runs.items()}


def _listing(violations: list[Violation]) -> str:
    return "\n".join(f"  {violation}" for violation in violations) or "  (none)"


# --- The tier config ----------------------------------------------------------------------------


@pytest.mark.parametrize("tier", TIERS)
def test_committed_tier_config_matches_the_rules(tier: Tier) -> None:
    assert tier_config(tier) == enforcement_config(tier), (
        f"infra/policy/{tier}.json is out of date with infra/policy/rules.py; "
        "regenerate it with `.venv/bin/python infra/policy/rules.py`"
    )


def test_only_cost_and_teardown_rules_are_relaxed_outside_prod() -> None:
    assert {
        "rds-multi-az",
        "elasticache-automatic-failover",
        "rds-deletion-protection",
        "alb-deletion-protection",
        "rds-backup-retention-7-days",
        "alb-access-logs",
        "alb-waf",
        "customer-managed-key",
        "s3-versioning",
        "rds-performance-insights",
        "rds-enhanced-monitoring",
    } == RELAXABLE_RULES, (
        "relax only Multi-AZ, deletion protection, long backups, access logs, WAF, the stack's own key, "
        "media versions and database insight: they cost money or block teardown"
    )
    prod = tier_config("prod")
    assert prod["all"] == "mandatory"
    assert not [name for name, entry in prod.items() if entry == "advisory"], "prod relaxes nothing"
    for tier in ("dev", "ephemeral"):
        advisory = {name for name, entry in tier_config(tier).items() if entry == "advisory"}
        assert advisory == RELAXABLE_RULES, f"{tier}.json relaxes {sorted(advisory)}"


def test_docs_list_every_rule_with_its_controls_and_relaxation() -> None:
    text = DOCS.read_text()
    for rule in RULES:
        row = re.search(rf"^\| `{re.escape(rule.name)}` \|(.*)$", text, re.MULTILINE)
        assert row, f"docs/policy.md has no table row for rule {rule.name}"
        cells = [cell.strip() for cell in row.group(1).split("|")]
        for control in rule.controls:
            assert control in cells[1], f"docs/policy.md: row of {rule.name} does not name {control}"
        relaxed = cells[2] == "advisory"
        assert relaxed == rule.relaxable, f"docs/policy.md: dev/ephemeral column of {rule.name} is wrong"


# --- The program's stacks pass ------------------------------------------------------------------


@pytest.mark.parametrize("name", TIER_OF_RUN)
def test_stack_has_no_mandatory_violation(
    name: str, runs: dict[str, ProgramRun], baseline: dict[str, list[Violation]]
) -> None:
    missing = [t for t in CHECKED_TYPES if not runs[name].of_type(t)]
    assert not missing, f"the {name} stack declares no {missing}: zero violations would prove nothing"
    blocking = [violation for violation in baseline[name] if violation.level == "mandatory"]
    assert not blocking, f"`pulumi preview` of the {name} stack would fail:\n{_listing(blocking)}"


@pytest.mark.parametrize("name", ["prod", "prod-https"])
def test_prod_has_no_advisory_violation_either(name: str, baseline: dict[str, list[Violation]]) -> None:
    assert not baseline[name], f"{name} violates:\n{_listing(baseline[name])}"


# --- Every rule fires on a realistic mistake ----------------------------------------------------

Inputs = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Mistake:
    rule: str
    run: str  # the program run (a key of TIER_OF_RUN) whose recorded resource is changed
    pick: Callable[[ProgramRun], RecordedResource]
    change: Callable[[Inputs], None]  # edits a copy of the picked resource's inputs
    what: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # resource options to set

    def __str__(self) -> str:
        return f"{self.rule}: {self.what}"


def _only(resource_type: str) -> Callable[[ProgramRun], RecordedResource]:
    return lambda run: run.one(resource_type)


def _first(resource_type: str) -> Callable[[ProgramRun], RecordedResource]:
    def pick(run: ProgramRun) -> RecordedResource:
        candidates = run.of_type(resource_type)
        assert candidates, f"stack {run.stack} declares no {resource_type}"
        return candidates[0]

    return pick


def _listener(protocol: str) -> Callable[[ProgramRun], RecordedResource]:
    def pick(run: ProgramRun) -> RecordedResource:
        matches = [r for r in run.of_type(LISTENER) if r.inputs.get("protocol") == protocol]
        assert matches, f"stack {run.stack} has no {protocol} listener"
        return matches[0]

    return pick


def _beat_service(run: ProgramRun) -> RecordedResource:
    beat_arns = {
        outputs(task)["arn"]
        for task in run.of_type(TASK_DEFINITION)
        if any(
            "beat" in container.get("command", [])
            for container in json.loads(task.inputs["containerDefinitions"])
        )
    }
    [service] = [s for s in run.of_type(ECS_SERVICE) if s.inputs.get("taskDefinition") in beat_arns]
    return service


def _security_group_of(store_type: str, key: str) -> Callable[[ProgramRun], RecordedResource]:
    def pick(run: ProgramRun) -> RecordedResource:
        [group_id] = run.one(store_type).inputs[key]
        [group] = [g for g in run.of_type(SECURITY_GROUP) if outputs(g)["id"] == group_id]
        return group

    return pick


def _alb_security_group(run: ProgramRun) -> RecordedResource:
    [group_id] = run.one(LOAD_BALANCER).inputs["securityGroups"]
    [group] = [g for g in run.of_type(SECURITY_GROUP) if outputs(g)["id"] == group_id]
    return group


def _app_security_group(run: ProgramRun) -> RecordedResource:
    service = run.of_type(ECS_SERVICE)[0]
    group_id = service.inputs["networkConfiguration"]["securityGroups"][0]
    [group] = [g for g in run.of_type(SECURITY_GROUP) if outputs(g)["id"] == group_id]
    return group


def _media(resource_type: str) -> Callable[[ProgramRun], RecordedResource]:
    return lambda run: run.one(resource_type, "media")


def _set(key: str, value: Any) -> Callable[[Inputs], None]:
    return lambda inputs: inputs.__setitem__(key, value)


def _drop(key: str) -> Callable[[Inputs], None]:
    return lambda inputs: inputs.pop(key, None)


def _set_parameter(name: str, value: str) -> Callable[[Inputs], None]:
    def change(inputs: Inputs) -> None:
        [parameter] = [p for p in inputs["parameters"] if p["name"] == name]
        parameter["value"] = value

    return change


def _in_first_container(edit: Callable[[Inputs], None]) -> Callable[[Inputs], None]:
    def change(inputs: Inputs) -> None:
        containers = json.loads(inputs["containerDefinitions"])
        edit(containers[0])
        inputs["containerDefinitions"] = json.dumps(containers)

    return change


def _add_ingress(cidrs: list[str], port: int) -> Callable[[Inputs], None]:
    rule = {"protocol": "tcp", "fromPort": port, "toPort": port, "cidrBlocks": cidrs}
    return lambda inputs: inputs.setdefault("ingress", []).append(rule)


def _add_environment(name: str, value: str) -> Callable[[Inputs], None]:
    return _in_first_container(
        lambda c: c.setdefault("environment", []).append({"name": name, "value": value})
    )


def _plain_http(inputs: Inputs) -> None:
    """The serving listener turned into plain HTTP (what a stack without a certificate declares)."""
    inputs.update(protocol="HTTP", port=8080)
    inputs.pop("certificateArn", None)
    inputs.pop("sslPolicy", None)
PUBLIC_KEY_STATEMENT = {
    "Sid": "Anyone",
    "Effect": "Allow",
    "Principal": "*",
    "Action": "kms:Decrypt",
    "Resource": "*",
}
DECRYPT_ALL_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "AnyKey", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}],
    }
)


def _add_key_statement(inputs: Inputs) -> None:
    policy = json.loads(inputs["policy"])
    policy["Statement"].append(PUBLIC_KEY_STATEMENT)
    inputs["policy"] = json.dumps(policy)


def _exec_logging(logging: str) -> Callable[[Inputs], None]:
    return lambda inputs: inputs["configuration"]["executeCommandConfiguration"].update(logging=logging)


FORWARD_ACTIONS = [{"type": "forward", "targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:1:tg/web"}]
ADMIN_POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)

MISTAKES = [
    Mistake(
        "rds-storage-encrypted", "prod", _only(RDS_INSTANCE), _set("storageEncrypted", False), "unencrypted"
    ),
    Mistake("rds-not-public", "prod", _only(RDS_INSTANCE), _set("publiclyAccessible", True), "public"),
    Mistake(
        "rds-force-ssl", "prod", _only(RDS_PARAMETER_GROUP), _set_parameter("rds.force_ssl", "0"), "ssl off"
    ),
    Mistake(
        "rds-force-ssl",
        "prod",
        _only(RDS_INSTANCE),
        _set("parameterGroupName", "default.postgres17"),
        "default parameter group",
    ),
    # Ephemeral stacks keep 1 day, so the 7-day rule already reports them and only this one is new.
    Mistake(
        "rds-backups-enabled",
        "ephemeral",
        _only(RDS_INSTANCE),
        _set("backupRetentionPeriod", 0),
        "no backups",
    ),
    Mistake(
        "rds-backup-retention-7-days", "prod", _only(RDS_INSTANCE), _set("backupRetentionPeriod", 3), "3 days"
    ),
    Mistake(
        "rds-auto-minor-version-upgrade",
        "prod",
        _only(RDS_INSTANCE),
        _set("autoMinorVersionUpgrade", False),
        "no minor upgrades",
    ),
    Mistake(
        "rds-deletion-protection",
        "prod",
        _only(RDS_INSTANCE),
        _set("deletionProtection", False),
        "unprotected",
    ),
    Mistake("rds-multi-az", "prod", _only(RDS_INSTANCE), _set("multiAz", False), "single AZ"),
    Mistake(
        "elasticache-transit-encryption",
        "prod",
        _only(REPLICATION_GROUP),
        _set("transitEncryptionEnabled", False),
        "plaintext",
    ),
    Mistake(
        "elasticache-at-rest-encryption",
        "prod",
        _only(REPLICATION_GROUP),
        _set("atRestEncryptionEnabled", False),
        "unencrypted",
    ),
    Mistake("elasticache-auth", "prod", _only(REPLICATION_GROUP), _drop("authToken"), "no auth token"),
    Mistake(
        "elasticache-non-cluster-mode",
        "prod",
        _only(REPLICATION_GROUP),
        _set("clusterMode", "enabled"),
        "cluster mode",
    ),
    Mistake(
        "elasticache-noeviction",
        "prod",
        _only(CACHE_PARAMETER_GROUP),
        _set_parameter("maxmemory-policy", "allkeys-lru"),
        "evicting",
    ),
    Mistake(
        "elasticache-noeviction",
        "prod",
        _only(REPLICATION_GROUP),
        _drop("parameterGroupName"),
        "default parameter group",
    ),
    Mistake(
        "elasticache-automatic-failover",
        "prod",
        _only(REPLICATION_GROUP),
        _set("automaticFailoverEnabled", False),
        "no failover",
    ),
    Mistake(
        "ecs-not-privileged",
        "prod",
        _first(TASK_DEFINITION),
        _in_first_container(lambda c: c.update(privileged=True)),
        "privileged",
    ),
    Mistake(
        "ecs-read-only-root-filesystem",
        "prod",
        _first(TASK_DEFINITION),
        _in_first_container(lambda c: c.pop("readonlyRootFilesystem")),
        "writable root",
    ),
    Mistake(
        "ecs-non-root-user",
        "prod",
        _first(TASK_DEFINITION),
        _in_first_container(lambda c: c.update(user="0")),
        "root user",
    ),
    Mistake(
        "ecs-awsvpc-network-mode", "prod", _first(TASK_DEFINITION), _set("networkMode", "bridge"), "bridge"
    ),
    Mistake(
        "ecs-log-configuration",
        "prod",
        _first(TASK_DEFINITION),
        _in_first_container(lambda c: c.pop("logConfiguration")),
        "no logs",
    ),
    Mistake(
        "ecs-no-secrets-in-environment",
        "prod",
        _first(TASK_DEFINITION),
        _add_environment("DJANGO_SECRET_KEY", "not-in-secrets"),
        "secret key in environment",
    ),
    Mistake(
        "ecs-no-secrets-in-environment",
        "prod",
        _first(TASK_DEFINITION),
        _add_environment("BROKER", "rediss://:token@broker:6379/0"),
        "URL with password in environment",
    ),
    Mistake(
        "ecs-no-public-ip-behind-nat",
        "prod",
        _first(ECS_SERVICE),
        lambda inputs: inputs["networkConfiguration"].update(assignPublicIp=True),
        "public IP",
    ),
    Mistake("ecs-single-beat", "prod", _beat_service, _set("desiredCount", 2), "two schedulers"),
    Mistake(
        "ecs-single-beat", "prod", _beat_service, _set("deploymentMaximumPercent", 200), "overlapping deploy"
    ),
    Mistake(
        "ecr-scan-on-push", "prod", _only(ECR_REPOSITORY), _drop("imageScanningConfiguration"), "no scan"
    ),
    Mistake(
        "ecr-immutable-tags", "prod", _only(ECR_REPOSITORY), _set("imageTagMutability", "MUTABLE"), "mutable"
    ),
    Mistake(
        "ecr-lifecycle-policy",
        "prod",
        _only(ECR_LIFECYCLE_POLICY),
        _set("repository", "another-repository"),
        "policy on another repository",
    ),
    Mistake(
        "alb-drop-invalid-headers",
        "prod",
        _only(LOAD_BALANCER),
        _set("dropInvalidHeaderFields", False),
        "keeps invalid headers",
    ),
    Mistake(
        "alb-http-redirects-to-https",
        "ephemeral-https",
        _listener("HTTP"),
        _set("defaultActions", FORWARD_ACTIONS),
        "HTTP forwards",
    ),
    Mistake(
        "alb-modern-tls-policy",
        "prod-https",
        _listener("HTTPS"),
        _set("sslPolicy", "ELBSecurityPolicy-TLS13-1-2-2021-06"),
        "default TLS policy",
    ),
    Mistake(
        "alb-deletion-protection",
        "prod",
        _only(LOAD_BALANCER),
        _set("enableDeletionProtection", False),
        "unprotected",
    ),
    Mistake("alb-access-logs", "prod", _only(LOAD_BALANCER), _drop("accessLogs"), "no access logs"),
    Mistake(
        "alb-waf",
        "prod",
        _only(WEB_ACL_ASSOCIATION),
        _set("resourceArn", "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/x/1"),
        "web ACL on another load balancer",
    ),
    Mistake(
        PROD_HTTPS_ONLY,
        "prod",
        _listener("HTTPS"),
        _plain_http,
        "the app served over plain HTTP",
    ),
    Mistake(
        "sg-data-stores-only-from-app",
        "prod",
        _security_group_of(RDS_INSTANCE, "vpcSecurityGroupIds"),
        _add_ingress(["10.0.0.0/8"], 5432),
        "database open to the VPC",
    ),
    Mistake(
        "sg-data-stores-only-from-app",
        "prod",
        _security_group_of(REPLICATION_GROUP, "securityGroupIds"),
        _add_ingress(["10.0.0.0/8"], 6379),
        "Redis open to the VPC",
    ),
    Mistake(
        "sg-only-alb-open-to-internet",
        "prod",
        _app_security_group,
        _add_ingress(["0.0.0.0/0"], 8000),
        "tasks open to the internet",
    ),
    Mistake(
        "sg-only-alb-open-to-internet",
        "prod",
        _alb_security_group,
        _add_ingress(["::/0"], 22),
        "SSH on the load balancer",
    ),
    Mistake(
        "iam-no-full-admin", "prod", _first(IAM_ROLE_POLICY), _set("policy", ADMIN_POLICY), "admin policy"
    ),
    Mistake("log-group-retention", "prod", _first(LOG_GROUP), _drop("retentionInDays"), "kept forever"),
    Mistake(
        EPHEMERAL_STACK_DESTROYABLE,
        "ephemeral",
        _only(RDS_INSTANCE),
        _set("deletionProtection", True),
        "protected database",
    ),
    Mistake(
        EPHEMERAL_STACK_DESTROYABLE,
        "ephemeral",
        _only(RDS_INSTANCE),
        _set("skipFinalSnapshot", False),
        "final snapshot",
    ),
    Mistake(
        EPHEMERAL_STACK_DESTROYABLE,
        "ephemeral",
        _only(ECR_REPOSITORY),
        _set("forceDelete", False),
        "repository keeps images",
    ),
    Mistake(
        EPHEMERAL_STACK_DESTROYABLE,
        "ephemeral",
        _only(LOAD_BALANCER),
        _set("enableDeletionProtection", True),
        "protected load balancer",
    ),
    Mistake(
        PROD_STATEFUL_PROTECTED,
        "prod",
        _only(RDS_INSTANCE),
        lambda inputs: None,
        "unprotected database",
        options={"protect": False},
    ),
    Mistake(
        PROD_STATEFUL_PROTECTED,
        "prod",
        _media(S3_BUCKET),
        lambda inputs: None,
        "unprotected media bucket",
        options={"protect": False},
    ),
    Mistake(
        PROD_STATEFUL_PROTECTED,
        "prod",
        _only(KMS_KEY),
        lambda inputs: None,
        "unprotected key",
        options={"protect": False},
    ),
    Mistake(
        EPHEMERAL_STACK_DESTROYABLE,
        "ephemeral",
        _media(S3_BUCKET),
        _set("forceDestroy", False),
        "media bucket keeps its files",
    ),
    Mistake(
        "iam-no-decrypt-with-every-key",
        "prod",
        _first(IAM_ROLE_POLICY),
        _set("policy", DECRYPT_ALL_POLICY),
        "any key",
    ),
    Mistake("kms-key-rotation", "prod", _only(KMS_KEY), _set("enableKeyRotation", False), "never rotated"),
    Mistake("kms-key-not-public", "prod", _only(KMS_KEY), _add_key_statement, "anyone decrypts"),
    Mistake(
        "customer-managed-key", "prod", _only(RDS_INSTANCE), _drop("kmsKeyId"), "database on the AWS key"
    ),
    Mistake("customer-managed-key", "prod", _first(SECRET), _drop("kmsKeyId"), "secret on the AWS key"),
    Mistake("customer-managed-key", "prod", _first(LOG_GROUP), _drop("kmsKeyId"), "log group on the AWS key"),
    Mistake(
        "s3-bucket-not-public",
        "prod",
        _media(S3_PUBLIC_ACCESS_BLOCK),
        _set("restrictPublicBuckets", False),
        "public bucket policies honoured",
    ),
    Mistake(
        "s3-tls-only",
        "prod",
        _media(S3_BUCKET_POLICY),
        _set("policy", json.dumps({"Version": "2012-10-17", "Statement": []})),
        "plain HTTP allowed",
    ),
    Mistake(
        "s3-versioning",
        "prod",
        _media(S3_VERSIONING),
        _set("versioningConfiguration", {"status": "Suspended"}),
        "versioning suspended",
    ),
    Mistake(
        "rds-performance-insights",
        "prod",
        _only(RDS_INSTANCE),
        _set("performanceInsightsEnabled", False),
        "off",
    ),
    Mistake(
        "rds-performance-insights",
        "prod",
        _only(RDS_INSTANCE),
        _drop("performanceInsightsKmsKeyId"),
        "insights on the AWS key",
    ),
    Mistake("rds-enhanced-monitoring", "prod", _only(RDS_INSTANCE), _set("monitoringInterval", 0), "off"),
    Mistake(
        "ecs-exec-audit-logging", "prod", _only(ECS_CLUSTER), _exec_logging("DEFAULT"), "task log groups"
    ),
    Mistake(
        "ecs-exec-audit-logging", "dev", _only(ECS_CLUSTER), _exec_logging("NONE"), "unrecorded sessions"
    ),
]


def test_every_rule_has_a_mistake_that_fires_it() -> None:
    untested = {rule.name for rule in RULES} - {mistake.rule for mistake in MISTAKES}
    assert not untested, f"rules without a negative test: {sorted(untested)}"


@pytest.mark.parametrize("mistake", MISTAKES, ids=str)
def test_mistake_fires_exactly_its_rule(
    mistake: Mistake, runs: dict[str, ProgramRun], baseline: dict[str, list[Violation]]
) -> None:
    run = runs[mistake.run]
    target = mistake.pick(run)
    inputs = copy.deepcopy(target.inputs)
    mistake.change(inputs)
    options = {**target.options, **mistake.options}
    assert (inputs, options) != (target.inputs, target.options), f"{mistake}: {target.urn} is unchanged"
    changed = [
        dataclasses.replace(r, inputs=inputs, options=options) if r is target else r for r in run.resources
    ]

    new = [
        v for v in evaluate(changed, tier_config(TIER_OF_RUN[mistake.run])) if v not in baseline[mistake.run]
    ]

    assert {v.rule for v in new} == {mistake.rule}, (
        f"changing {target.urn} ({mistake.what}) should fire exactly {mistake.rule}; "
        f"new violations:\n{_listing(new)}"
    )


def test_protected_resource_blocks_ephemeral_destroy(
    runs: dict[str, ProgramRun], baseline: dict[str, list[Violation]]
) -> None:
    run = runs["ephemeral"]
    database = run.one(RDS_INSTANCE)

    new = [
        v
        for v in evaluate(run.resources, tier_config("ephemeral"), protected=[database.urn])
        if v not in baseline["ephemeral"]
    ]

    assert [(v.rule, v.urn) for v in new] == [(EPHEMERAL_STACK_DESTROYABLE, database.urn)], _listing(new)


def test_deletion_blockers_are_allowed_outside_ephemeral_stacks(runs: dict[str, ProgramRun]) -> None:
    # prod runs with deletion protection and `protect`; the ephemeral-only rule must not turn that
    # into a violation.
    run = runs["prod"]
    assert run.one(RDS_INSTANCE).options["protect"], "prod protects its database"
    violations = evaluate(run.resources, tier_config("prod"))
    assert not violations, _listing(violations)


def test_plain_http_is_fine_in_dev_and_refused_in_prod(
    runs: dict[str, ProgramRun], baseline: dict[str, list[Violation]]
) -> None:
    """The dev stack serves HTTP on port 80; the same declarations in the prod tier are refused."""
    dev = runs["dev"]
    assert not [v for v in baseline["dev"] if v.rule == PROD_HTTPS_ONLY]
    [listener] = dev.of_type(LISTENER)
    as_prod = [v for v in evaluate(dev.resources, tier_config("prod")) if v.rule == PROD_HTTPS_ONLY]
    assert [(v.urn, v.level) for v in as_prod] == [(listener.urn, "mandatory")], _listing(as_prod)
    assert "set domainName and hostedZoneId, or certificateArn" in as_prod[0].message
