"""Production data under Pulumi mocks: the stack's KMS key and what it encrypts, the media bucket and
who may use it, database insight, audited ECS Exec sessions, and a stack pointed at a restore."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra import app_contract
from testkit.engine.destroy import replay_destroy
from testkit.program import ProgramRun, RecordedResource, run_program

KEY = "aws:kms/key:Key"
BUCKET = "aws:s3/bucket:Bucket"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
RDS = "aws:rds/instance:Instance"
RESTORED = "djcelery-prod-postgres-r202612011155"


def statements(policy: str | dict[str, Any]) -> dict[str, dict[str, Any]]:
    document = json.loads(policy) if isinstance(policy, str) else policy
    return {statement["Sid"]: statement for statement in document["Statement"]}


def environment(run: ProgramRun) -> list[dict[str, str]]:
    """The environment of every container of every task definition."""
    return [
        {pair["name"]: pair["value"] for pair in container["environment"]}
        for task in run.of_type("aws:ecs/taskDefinition:TaskDefinition")
        for container in json.loads(task.inputs["containerDefinitions"])
    ]


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def one_of(run: ProgramRun, type_token: str, name: str) -> RecordedResource:
    return run.one(type_token, name)


# --- The customer-managed key --------------------------------------------------------------------


def test_prod_has_one_rotated_protected_key_whose_policy_names_each_service(prod_run: ProgramRun) -> None:
    key = prod_run.one(KEY)
    assert key.inputs["enableKeyRotation"] is True
    assert key.inputs["deletionWindowInDays"] == 30
    assert key.options["protect"] is True and key.options["retainOnDelete"] is True
    policy = statements(key.inputs["policy"])
    assert policy["AccountAdministersKey"]["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    logs = policy["LogsEncryptStackLogGroups"]
    assert logs["Principal"] == {"Service": "logs.us-east-1.amazonaws.com"}
    assert logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"] == [
        "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/djcelery-prod/*",
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/rds/instance/djcelery-prod-postgres*",
        "arn:aws:logs:us-east-1:123456789012:log-group:aws-waf-logs-djcelery-prod",
    ]
    alarms, events = policy["AlarmsPublishToTopic"], policy["EventsPublishToTopic"]
    assert alarms["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert alarms["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}, (
        "CloudWatch alarms send aws:SourceAccount to KMS (SNS developer guide, key management)"
    )
    assert events["Principal"] == {"Service": "events.amazonaws.com"}
    assert "Condition" not in events, (
        "KMS sees no aws:Source* key for EventBridge deliveries to an encrypted topic (SNS developer "
        "guide, compatibility with AWS services): a condition on one drops every deployment mail"
    )
    assert "*" not in json.dumps([statement["Principal"] for statement in policy.values()])
    assert prod_run.one("aws:kms/alias:Alias").inputs["name"] == "alias/djcelery-prod"


def test_the_key_encrypts_every_data_store_secret_log_topic_bucket_and_repository(
    prod_run: ProgramRun,
) -> None:
    key_arn = prod_run.one(KEY).state["arn"]
    assert prod_run.outputs["dataKeyArn"] == key_arn
    database = prod_run.one(RDS).inputs
    assert (database["kmsKeyId"], database["performanceInsightsKmsKeyId"]) == (key_arn, key_arn)
    assert prod_run.one("aws:elasticache/replicationGroup:ReplicationGroup").inputs["kmsKeyId"] == key_arn
    assert {s.inputs["kmsKeyId"] for s in prod_run.of_type("aws:secretsmanager/secret:Secret")} == {key_arn}
    assert {group.inputs.get("kmsKeyId") for group in prod_run.of_type(LOG_GROUP)} == {key_arn}
    assert prod_run.one("aws:sns/topic:Topic").inputs["kmsMasterKeyId"] == key_arn
    assert prod_run.one("aws:ecr/repository:Repository").inputs["encryptionConfigurations"] == [
        {"encryptionType": "KMS", "kmsKey": key_arn}
    ]
    [rule] = one_of(
        prod_run,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "media",
    ).inputs["rules"]
    assert rule["applyServerSideEncryptionByDefault"] == {
        "sseAlgorithm": "aws:kms",
        "kmsMasterKeyId": key_arn,
    }
    assert rule["bucketKeyEnabled"] is True


def test_execution_roles_may_decrypt_the_secrets_with_the_key_only_through_secrets_manager(
    prod_run: ProgramRun,
) -> None:
    key_arn = prod_run.one(KEY).state["arn"]
    executions = [p for p in prod_run.of_type(ROLE_POLICY) if p.name.endswith("-execution")]
    assert executions
    for policy in executions:
        decrypt = statements(policy.inputs["policy"])["DecryptTaskSecrets"]
        assert (decrypt["Action"], decrypt["Resource"]) == ("kms:Decrypt", key_arn)
        assert decrypt["Condition"] == {"StringLike": {"kms:ViaService": "secretsmanager.*.amazonaws.com"}}


def test_without_the_key_nothing_names_one(dev_run: ProgramRun) -> None:
    assert dev_run.of_type(KEY) == [] and dev_run.outputs["dataKeyArn"] is None
    everything = json.dumps([resource.inputs for resource in dev_run.resources])
    assert "kms" not in everything.lower().replace("kmskeyid", ""), "no resource refers to a KMS key"
    [rule] = one_of(
        dev_run,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "media",
    ).inputs["rules"]
    assert rule["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}


# --- The media bucket ------------------------------------------------------------------------------


@pytest.mark.parametrize("run_name", ["dev_run", "prod_run", "ephemeral_run", "custom_run"])
def test_every_stack_has_a_private_tls_only_media_bucket_that_every_role_is_told_about(
    run_name: str, request: pytest.FixtureRequest
) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    bucket = run.one(BUCKET, "media")
    name = bucket.state["bucket"]
    assert name.startswith(f"djcelery-{run.stack}-media-") and run.outputs["mediaBucketName"] == name
    public_access = one_of(run, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "media").inputs
    assert all(
        public_access[key] is True for key in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls")
    )
    assert public_access["restrictPublicBuckets"] is True
    ownership = one_of(run, "aws:s3/bucketOwnershipControls:BucketOwnershipControls", "media").inputs
    assert ownership["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    tls = statements(one_of(run, "aws:s3/bucketPolicy:BucketPolicy", "media").inputs["policy"])["TlsOnly"]
    assert (tls["Effect"], tls["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})
    assert {env[app_contract.MEDIA_BUCKET] for env in environment(run)} == {name}


def test_only_prod_keeps_its_media_and_versions(prod_run: ProgramRun, dev_run: ProgramRun) -> None:
    prod_bucket = prod_run.one(BUCKET, "media")
    assert prod_bucket.options["protect"] is True and prod_bucket.inputs["forceDestroy"] is False
    versioning = one_of(prod_run, "aws:s3/bucketVersioning:BucketVersioning", "media").inputs
    assert versioning["versioningConfiguration"] == {"status": "Enabled"}
    rules = {
        rule["id"]: rule
        for rule in one_of(
            prod_run, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "media"
        ).inputs["rules"]
    }
    assert rules["expire-noncurrent-versions"]["noncurrentVersionExpiration"] == {"noncurrentDays": 30}
    assert rules["abort-incomplete-uploads"]["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 7}
    dev_bucket = dev_run.one(BUCKET, "media")
    assert dev_bucket.options["protect"] is False and dev_bucket.inputs["forceDestroy"] is True
    assert dev_run.of_type("aws:s3/bucketVersioning:BucketVersioning") == []


@pytest.mark.parametrize("run_name", ["dev_run", "prod_run"])
def test_every_task_role_may_use_the_media_bucket_and_no_other(
    run_name: str, request: pytest.FixtureRequest
) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    bucket_arn = run.one(BUCKET, "media").state["arn"]
    media_policies = [p for p in run.of_type(ROLE_POLICY) if p.name.endswith("-task-media")]
    task_roles = [r for r in run.of_type("aws:iam/role:Role") if r.name.endswith("-task-role")]
    assert len(media_policies) == len(task_roles) > 0
    for policy in media_policies:
        granted = statements(policy.inputs["policy"])
        assert granted["ListMedia"] == {
            "Sid": "ListMedia",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket_arn,
        }
        assert set(granted["ReadWriteMedia"]["Action"]) == {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}
        assert granted["ReadWriteMedia"]["Resource"] == f"{bucket_arn}/*"
        s3_resources = {
            resource
            for statement in granted.values()
            if any(action.startswith("s3:") for action in as_list(statement["Action"]))
            for resource in as_list(statement["Resource"])
        }
        assert s3_resources == {bucket_arn, f"{bucket_arn}/*"}
        assert ("EncryptMedia" in granted) is (run.stack == "prod")


# --- Database insight ------------------------------------------------------------------------------


def test_prod_watches_its_database_closely_and_dev_does_not(
    prod_run: ProgramRun, dev_run: ProgramRun
) -> None:
    database = prod_run.one(RDS).inputs
    assert database["performanceInsightsEnabled"] is True
    assert database["performanceInsightsRetentionPeriod"] == 7
    assert database["monitoringInterval"] == 60
    role = prod_run.one("aws:iam/role:Role", "database-monitoring-role")
    assert database["monitoringRoleArn"] == role.state["arn"]
    [trust] = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust["Principal"] == {"Service": "monitoring.rds.amazonaws.com"}
    attachment = prod_run.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "database-monitoring")
    assert attachment.inputs["policyArn"].endswith("service-role/AmazonRDSEnhancedMonitoringRole")
    assert attachment.urn in prod_run.one(RDS).dependencies, "RDS checks the role when monitoring starts"
    dev = dev_run.one(RDS).inputs
    assert not {"performanceInsightsEnabled", "monitoringInterval", "monitoringRoleArn"} & set(dev)


# --- ECS Exec sessions -----------------------------------------------------------------------------


@pytest.mark.parametrize(("run_name", "encrypted"), [("dev_run", False), ("prod_run", True)])
def test_ecs_exec_sessions_are_recorded_in_the_clusters_own_audit_log_group(
    run_name: str, encrypted: bool, request: pytest.FixtureRequest
) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    group = run.one(LOG_GROUP, "exec-sessions")
    assert (
        group.inputs["name"]
        == f"/ecs/djcelery-{run.stack}/exec-sessions"
        == run.outputs["execAuditLogGroupName"]
    )
    assert group.inputs["retentionInDays"] == int(run.config["logRetentionDays"])
    configuration = run.one("aws:ecs/cluster:Cluster").inputs["configuration"]["executeCommandConfiguration"]
    assert configuration["logging"] == "OVERRIDE"
    assert configuration["logConfiguration"] == {
        "cloudWatchLogGroupName": group.inputs["name"],
        "cloudWatchEncryptionEnabled": encrypted,
    }
    assert ("kmsKeyId" in configuration) is encrypted
    for policy in (p for p in run.of_type(ROLE_POLICY) if p.name.endswith("-task-exec")):
        granted = statements(policy.inputs["policy"])
        assert granted["WriteSessionLogs"]["Resource"] == f"{group.state['arn']}:*"
        assert ("DecryptSessionChannel" in granted) is encrypted


# --- A stack pointed at a restore of its database --------------------------------------------------


@pytest.fixture(scope="module")
def restored_run() -> ProgramRun:
    return run_program("prod", {"dbRestoredIdentifier": RESTORED})


def test_the_stack_adopts_the_restored_instance_as_a_new_resource(
    restored_run: ProgramRun, prod_run: ProgramRun
) -> None:
    [instance] = restored_run.of_type(RDS)
    assert instance.name == "database-postgres-r202612011155", (
        "a new resource: imported, not replaced in place"
    )
    assert instance.inputs["identifier"] == RESTORED == restored_run.outputs["dbInstanceIdentifier"]
    assert instance.options["importId"] == RESTORED
    assert prod_run.one(RDS).options["importId"] == "", "the stack's own instance is never imported"
    # Everything else about it is the stack's: the engine brings the import in line with these inputs.
    same = {
        key: value
        for key, value in prod_run.one(RDS).inputs.items()
        if key not in ("identifier", "finalSnapshotIdentifier")
    }
    assert {key: instance.inputs[key] for key in same} == same
    assert instance.inputs["finalSnapshotIdentifier"].startswith("database-r202612011155-final-")


def test_the_restored_instance_exports_its_logs_to_groups_of_its_own(restored_run: ProgramRun) -> None:
    names = {
        group.inputs["name"]
        for group in restored_run.of_type(LOG_GROUP)
        if "/aws/rds/" in group.inputs["name"]
    }
    assert names == {f"/aws/rds/instance/{RESTORED}/postgresql", f"/aws/rds/instance/{RESTORED}/upgrade"}
    instance = restored_run.one(RDS)
    for group in restored_run.of_type(LOG_GROUP):
        if "/aws/rds/" in group.inputs["name"]:
            assert group.urn in instance.dependencies, "RDS would create (and never expire) them otherwise"


def test_pointing_the_stack_at_a_restore_restarts_every_service_with_the_new_url(
    restored_run: ProgramRun, prod_run: ProgramRun
) -> None:
    """ECS reads DATABASE_URL only when a task starts: the instance's name in every container's
    environment gives every task definition a new revision, so every service rolls out."""
    assert {env[app_contract.DATABASE_INSTANCE] for env in environment(prod_run)} == {
        "djcelery-prod-postgres"
    }
    assert {env[app_contract.DATABASE_INSTANCE] for env in environment(restored_run)} == {RESTORED}
    database_url = restored_run.one("aws:secretsmanager/secretVersion:SecretVersion", "database-url")
    assert restored_run.one(RDS).state["address"] in database_url.inputs["secretString"]
    alarms = [
        a
        for a in restored_run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if RESTORED in json.dumps(a.inputs)
    ]
    assert alarms, "the database alarms watch the restored instance"


def test_a_disposable_stack_pointed_at_a_restore_still_destroys_cleanly() -> None:
    run = run_program("dev", {"dbRestoredIdentifier": "djcelery-dev-postgres-r202612011155"})
    assert replay_destroy(run).clean
