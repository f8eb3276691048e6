"""PostgreSQL, the Redis broker and the app's secrets, per stack."""

import environ
import pytest
from redis.connection import parse_url

from infra import app_contract
from testkit.program import ProgramRun

RDS = "aws:rds/instance:Instance"
RDS_PARAMETERS = "aws:rds/parameterGroup:ParameterGroup"
RDS_SUBNETS = "aws:rds/subnetGroup:SubnetGroup"
REDIS = "aws:elasticache/replicationGroup:ReplicationGroup"
REDIS_PARAMETERS = "aws:elasticache/parameterGroup:ParameterGroup"
REDIS_SUBNETS = "aws:elasticache/subnetGroup:SubnetGroup"
PASSWORD = "random:index/randomPassword:RandomPassword"
SECRET = "aws:secretsmanager/secret:Secret"
SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"


def private_subnet_ids(run: ProgramRun) -> set[str]:
    return {subnet.id for subnet in run.of_type("aws:ec2/subnet:Subnet") if "private" in subnet.name}


def secret_value(run: ProgramRun, variable: str) -> str:
    arn = run.outputs["secretArns"][variable]
    [secret] = [secret for secret in run.of_type(SECRET) if secret.state["arn"] == arn]
    [version] = [
        version for version in run.of_type(SECRET_VERSION) if version.inputs["secretId"] == secret.id
    ]
    return version.inputs["secretString"]


@pytest.mark.parametrize("run_name", ["dev_run", "prod_run", "ephemeral_run"])
def test_postgres_is_encrypted_private_and_forces_tls(run_name: str, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    database = run.one(RDS)
    inputs = database.inputs
    assert inputs["engine"] == "postgres"
    assert inputs["engineVersion"] == "17"
    assert inputs["storageType"] == "gp3"
    assert inputs["storageEncrypted"] is True
    assert inputs["publiclyAccessible"] is False
    assert inputs["autoMinorVersionUpgrade"] is True
    assert inputs["username"] != "postgres"
    parameters = run.one(RDS_PARAMETERS)
    assert parameters.inputs["family"] == "postgres17"
    assert [(p["name"], p["value"]) for p in parameters.inputs["parameters"]] == [("rds.force_ssl", "1")]
    assert inputs["parameterGroupName"] == parameters.state["name"]
    subnets = run.one(RDS_SUBNETS)
    assert set(subnets.inputs["subnetIds"]) == private_subnet_ids(run)
    assert inputs["dbSubnetGroupName"] == subnets.state["name"]


def test_prod_postgres_is_multi_az_protected_and_keeps_a_final_snapshot(prod_run: ProgramRun) -> None:
    inputs = prod_run.one(RDS).inputs
    assert inputs["multiAz"] is True
    assert inputs["deletionProtection"] is True
    assert inputs["skipFinalSnapshot"] is False
    assert inputs["finalSnapshotIdentifier"]
    assert inputs["backupRetentionPeriod"] == 14


def test_dev_postgres_is_single_az_with_a_week_of_backups(dev_run: ProgramRun) -> None:
    inputs = dev_run.one(RDS).inputs
    assert inputs["multiAz"] is False
    assert inputs["backupRetentionPeriod"] == 7


def test_ephemeral_postgres_has_no_deletion_blocker(ephemeral_run: ProgramRun) -> None:
    inputs = ephemeral_run.one(RDS).inputs
    assert inputs["deletionProtection"] is False
    assert inputs["skipFinalSnapshot"] is True
    assert "finalSnapshotIdentifier" not in inputs
    assert inputs["deleteAutomatedBackups"] is True


def test_database_password_is_generated_and_reaches_the_app_only_as_a_secret(dev_run: ProgramRun) -> None:
    password = dev_run.one(PASSWORD, "database")
    assert password.inputs["special"] is False and password.inputs["length"] >= 32
    database = dev_run.one(RDS)
    assert database.inputs["password"] == password.state["result"]
    url = environ.Env.db_url_config(secret_value(dev_run, app_contract.DATABASE_URL))
    assert url["PASSWORD"] == password.state["result"]
    assert (url["HOST"], url["PORT"], url["USER"], url["NAME"]) == (
        database.state["address"],
        5432,
        database.inputs["username"],
        database.inputs["dbName"],
    )
    assert url["OPTIONS"] == {"sslmode": "require"}


@pytest.mark.parametrize("run_name", ["dev_run", "prod_run", "ephemeral_run"])
def test_broker_is_a_single_shard_with_tls_auth_and_no_eviction(run_name: str, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    inputs = run.one(REDIS).inputs
    assert inputs["clusterMode"] == "disabled"
    assert "numNodeGroups" not in inputs, "Celery cannot use Redis Cluster"
    # dev runs Valkey (cheaper nodes, same protocol); prod and new stacks Redis OSS.
    engine, family = ("valkey", "valkey8") if run_name == "dev_run" else ("redis", "redis7")
    assert inputs["engine"] == engine
    assert inputs["transitEncryptionEnabled"] is True
    assert inputs["transitEncryptionMode"] == "required"
    assert inputs["atRestEncryptionEnabled"] is True
    assert inputs["authToken"] == run.one(PASSWORD, "auth-token").state["result"]
    assert inputs["autoMinorVersionUpgrade"] is True
    parameters = run.one(REDIS_PARAMETERS)
    assert parameters.inputs["family"] == family
    assert parameters.inputs["parameters"] == [{"name": "maxmemory-policy", "value": "noeviction"}]
    assert inputs["parameterGroupName"] == parameters.state["name"]
    assert set(run.one(REDIS_SUBNETS).inputs["subnetIds"]) == private_subnet_ids(run)


def test_prod_broker_has_a_replica_with_automatic_failover_across_azs(prod_run: ProgramRun) -> None:
    inputs = prod_run.one(REDIS).inputs
    assert inputs["numCacheClusters"] == 2
    assert inputs["automaticFailoverEnabled"] is True
    assert inputs["multiAzEnabled"] is True


def test_dev_broker_is_one_node(dev_run: ProgramRun) -> None:
    inputs = dev_run.one(REDIS).inputs
    assert inputs["numCacheClusters"] == 1
    assert inputs["automaticFailoverEnabled"] is False


def test_valkey_uses_its_own_parameter_family(custom_run: ProgramRun) -> None:
    assert custom_run.one(REDIS).inputs["engine"] == "valkey"
    assert custom_run.one(REDIS_PARAMETERS).inputs["family"] == "valkey8"


def test_redis_url_secret_verifies_the_certificate_of_the_primary(dev_run: ProgramRun) -> None:
    broker = dev_run.one(REDIS)
    url = secret_value(dev_run, app_contract.REDIS_URL)
    assert url.startswith("rediss://")
    parts = parse_url(url)
    assert parts["ssl_cert_reqs"] == "required"
    assert parts["password"] == broker.inputs["authToken"]
    assert (parts["host"], parts["port"], parts["db"]) == (broker.state["primaryEndpointAddress"], 6379, 0)


@pytest.mark.parametrize(
    ("run_name", "recovery_days"), [("dev_run", 7), ("prod_run", 7), ("ephemeral_run", 0)]
)
def test_one_secret_per_app_secret_and_ephemeral_ones_are_deleted_at_once(
    run_name: str, recovery_days: int, request
) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    assert set(run.outputs["secretArns"]) == set(app_contract.SECRET_VARIABLES)
    secrets = run.of_type(SECRET)
    assert len(secrets) == 3
    assert {secret.inputs["recoveryWindowInDays"] for secret in secrets} == {recovery_days}
    secret_key = run.one(PASSWORD, "django-secret-key")
    assert secret_value(run, app_contract.DJANGO_SECRET_KEY) == secret_key.state["result"]
    assert secret_key.inputs["length"] >= 50
