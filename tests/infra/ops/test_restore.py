"""`python -m infra.ops restore`: a point-in-time restore of the stack's database into a new
instance, and the configuration change the program accepts to adopt it.

RDS is moto for the whole restore (moto restores at once and checks no restore window) and a
botocore Stubber for what moto does not model: the restore window, RDS's refusals, an instance
that fails or takes too long.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from infra.ops import cli as ops
from infra.ops import restore
from infra.ops.stack import DeployedStack
from infra.stack import validate
from testkit.moto_network import vpc_with_two_subnets
from testkit.program import bare_config, run_program

REGION = "eu-west-1"
SOURCE = "djcelery-prod-postgres"
OUTPUTS: dict[str, Any] = {
    "clusterName": "djcelery-prod",
    "webServiceName": "djcelery-prod-web",
    "webTaskDefinitionArn": f"arn:aws:ecs:{REGION}:123456789012:task-definition/djcelery-prod-web:3",
    "migrateTaskDefinitionArn": f"arn:aws:ecs:{REGION}:123456789012:task-definition/djcelery-prod-migrate:3",
    "webContainerName": "web",
    "serviceSubnetIds": ["subnet-0aaa", "subnet-0bbb"],
    "appSecurityGroupId": "sg-0app",
    "assignPublicIp": False,
    "logGroupNames": {"web": "/ecs/djcelery-prod/web", "migrate": "/ecs/djcelery-prod/migrate"},
    "dbInstanceIdentifier": SOURCE,
}
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def deployed(outputs: dict[str, Any] | None = None, protected: bool = True) -> DeployedStack:
    return DeployedStack.from_outputs("prod", REGION, outputs or OUTPUTS, protected)


def run_restore(
    argv: list[str], client: Any, capsys: pytest.CaptureFixture[str], stack: DeployedStack | None = None
) -> tuple[int, str, str]:
    code = ops.main(
        ["restore", "prod", *argv],
        stack_reader=lambda name: stack or deployed(),
        client_factory=lambda service, region: client,
        sleep=lambda seconds: None,
    )
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- Names and times -----------------------------------------------------------------------------


def test_a_restore_is_named_after_the_stacks_database_and_the_minute_it_restores_to() -> None:
    moment = datetime(2026, 12, 1, 11, 55, 42, tzinfo=UTC)
    assert restore.restored_identifier(SOURCE, moment) == "djcelery-prod-postgres-r202612011155"
    # Restoring a restore names it after the stack's own database again, not a chain of suffixes.
    again = restore.restored_identifier("djcelery-prod-postgres-r202612011155", moment + timedelta(hours=1))
    assert again == "djcelery-prod-postgres-r202612011255"
    assert restore.stack_database(again) == SOURCE


def test_the_longest_stack_name_still_fits_rds_identifiers() -> None:
    longest = f"{'p' * 31}-{'s' * 8}-postgres"  # a 40-character stack prefix (infra.naming)
    assert len(restore.restored_identifier(longest, NOW)) == 63


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01T11:55:00Z", datetime(2026, 12, 1, 11, 55, tzinfo=UTC)),
        ("2026-12-01T12:55:00+01:00", datetime(2026, 12, 1, 11, 55, tzinfo=UTC)),
    ],
)
def test_restore_times_are_read_as_utc(text: str, expected: datetime) -> None:
    assert restore.parse_restore_time(text) == expected


@pytest.mark.parametrize(
    ("text", "message"), [("2026-12-01T11:55:00", "has no time zone"), ("noon", "ISO 8601")]
)
def test_a_restore_time_without_zone_or_not_a_time_is_refused(text: str, message: str) -> None:
    with pytest.raises(restore.RestoreError, match=message):
        restore.parse_restore_time(text)


def test_the_printed_configuration_is_what_the_program_accepts_and_adopts() -> None:
    """The identifier the command makes is valid config for that stack only, and the URN it tells
    the operator to unprotect is the one the program gives the instance being replaced."""
    target = restore.restored_identifier(SOURCE, NOW)
    config = validate(bare_config("prod", {"dbRestoredIdentifier": target}), stack_database=SOURCE)
    assert config.database.restored_identifier == target
    with pytest.raises(ValueError, match="dbRestoredIdentifier"):
        validate(bare_config("dev", {"dbRestoredIdentifier": target}), stack_database="djcelery-dev-postgres")
    own = run_program("prod").one("aws:rds/instance:Instance")
    assert restore.instance_urn("prod", "djcelery", SOURCE) == own.urn
    adopted = run_program("prod", {"dbRestoredIdentifier": target}).one("aws:rds/instance:Instance")
    assert restore.instance_urn("prod", "djcelery", target) == adopted.urn


# --- The whole restore against moto --------------------------------------------------------------


@pytest.fixture
def rds() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("rds", region_name=REGION)
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc, subnets = vpc_with_two_subnets(ec2, REGION)
        group = ec2.create_security_group(GroupName="db", Description="db", VpcId=vpc)["GroupId"]
        client.create_db_subnet_group(
            DBSubnetGroupName="database-subnets", DBSubnetGroupDescription="db", SubnetIds=subnets
        )
        client.create_db_parameter_group(
            DBParameterGroupName="database-parameters", DBParameterGroupFamily="postgres17", Description="tls"
        )
        client.create_db_instance(
            DBInstanceIdentifier=SOURCE,
            Engine="postgres",
            DBInstanceClass="db.t4g.medium",
            MasterUsername="app",
            MasterUserPassword="p" * 40,
            AllocatedStorage=50,
            StorageType="gp3",
            StorageEncrypted=True,
            BackupRetentionPeriod=14,
            MultiAZ=True,
            DeletionProtection=True,
            DBSubnetGroupName="database-subnets",
            VpcSecurityGroupIds=[group],
            DBParameterGroupName="database-parameters",
            Tags=[{"Key": "stack", "Value": "prod"}, {"Key": "project", "Value": "djcelery"}],
        )
        yield client


def test_restore_makes_an_instance_like_the_stacks_and_prints_how_to_adopt_it(
    rds: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_restore(["--to", "2026-12-01T11:55:00Z"], rds, capsys)

    assert code == 0, err
    target = "djcelery-prod-postgres-r202612011155"
    [made] = rds.describe_db_instances(DBInstanceIdentifier=target)["DBInstances"]
    [source] = rds.describe_db_instances(DBInstanceIdentifier=SOURCE)["DBInstances"]
    for setting in ("DBInstanceClass", "MultiAZ", "StorageType", "DeletionProtection", "VpcSecurityGroups"):
        assert made[setting] == source[setting], setting
    assert made["DBSubnetGroup"]["DBSubnetGroupName"] == "database-subnets"
    assert made["DBParameterGroups"][0]["DBParameterGroupName"] == "database-parameters"
    assert {tag["Key"]: tag["Value"] for tag in made["TagList"]} == {"stack": "prod", "project": "djcelery"}
    assert f"{target}: available" in err
    lines = [shlex.split(line) for line in out.splitlines() if not line.startswith("#")]
    assert lines == [
        [
            "pulumi",
            "state",
            "unprotect",
            restore.instance_urn("prod", "djcelery", SOURCE),
            "--stack",
            "prod",
            "--yes",
        ],
        [
            "aws",
            "rds",
            "modify-db-instance",
            "--db-instance-identifier",
            SOURCE,
            "--no-deletion-protection",
            "--apply-immediately",
        ],
        ["pulumi", "config", "set", "dbRestoredIdentifier", target, "--stack", "prod"],
        ["pulumi", "up", "--stack", "prod"],
    ]


def test_an_unprotected_stack_needs_only_the_configuration_change(
    rds: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    rds.modify_db_instance(DBInstanceIdentifier=SOURCE, DeletionProtection=False, ApplyImmediately=True)
    code, out, _ = run_restore(["--latest", "--no-wait"], rds, capsys, deployed(protected=False))
    assert code == 0
    commands = [line for line in out.splitlines() if not line.startswith("#")]
    assert [command.split()[:3] for command in commands] == [
        ["pulumi", "config", "set"],
        ["pulumi", "up", "--stack"],
    ]
    assert commands[0].split()[4].startswith("djcelery-prod-postgres-r")


def test_a_stack_whose_database_is_gone_is_told_so(rds: Any, capsys: pytest.CaptureFixture[str]) -> None:
    outputs = {**OUTPUTS, "dbInstanceIdentifier": "djcelery-prod-postgres-r202611301200"}
    code, out, err = run_restore(["--latest"], rds, capsys, deployed(outputs))
    assert (code, out) == (ops.EXIT_OPS_ERROR, "")
    assert "djcelery-prod-postgres-r202611301200 does not exist in this account and region" in err


def test_a_stack_deployed_before_the_output_existed_is_asked_to_update(
    rds: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = {key: value for key, value in OUTPUTS.items() if key != "dbInstanceIdentifier"}
    code, _, err = run_restore(["--latest"], rds, capsys, deployed(outputs))
    assert code == ops.EXIT_OPS_ERROR
    assert "does not export dbInstanceIdentifier" in err and "scripts/deploy prod" in err


def test_a_second_restore_to_the_same_minute_is_refused_with_what_to_do(
    rds: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_restore(["--to", "2026-12-01T11:55:00Z"], rds, capsys)[0] == 0
    code, _, err = run_restore(["--to", "2026-12-01T11:55:30Z"], rds, capsys)
    assert code == ops.EXIT_OPS_ERROR
    assert "djcelery-prod-postgres-r202612011155 exists already" in err
    assert "aws rds delete-db-instance --db-instance-identifier djcelery-prod-postgres-r202612011155" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--to", "2026-12-01T11:55:00Z", "--latest"], "not allowed with argument"),
        ([], "one of the arguments --to --latest is required"),
    ],
)
def test_exactly_one_restore_point_is_required(
    argv: list[str], message: str, rds: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_restore(argv, rds, capsys)
    assert exit_info.value.code == ops.EXIT_USAGE
    assert message in capsys.readouterr().err


# --- What moto does not model: the window, refusals, a failing or slow instance ------------------


def stubbed() -> tuple[Any, Stubber]:
    client = botocore.session.get_session().create_client(
        "rds", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    return client, Stubber(client)


def described(**changes: Any) -> dict[str, Any]:
    instance = {
        "DBInstanceIdentifier": SOURCE,
        "DBInstanceClass": "db.t4g.medium",
        "DBInstanceStatus": "available",
        "BackupRetentionPeriod": 14,
        "MultiAZ": True,
        "DeletionProtection": True,
        "StorageType": "gp3",
        "LatestRestorableTime": NOW - timedelta(minutes=5),
        "VpcSecurityGroups": [{"VpcSecurityGroupId": "sg-0db", "Status": "active"}],
        "DBSubnetGroup": {"DBSubnetGroupName": "database-subnets"},
        "DBParameterGroups": [
            {"DBParameterGroupName": "database-parameters", "ParameterApplyStatus": "in-sync"}
        ],
        "TagList": [],
        **changes,
    }
    return {"DBInstances": [instance]}


def window(earliest: datetime) -> dict[str, Any]:
    return {
        "DBInstanceAutomatedBackups": [
            {"DBInstanceIdentifier": SOURCE, "RestoreWindow": {"EarliestTime": earliest, "LatestTime": NOW}}
        ]
    }


@pytest.mark.parametrize(
    ("to", "message"),
    [
        (
            "2026-12-01T11:58:00Z",
            "after the latest restorable time: the restore window is 2026-11-17T12:00:00Z",
        ),
        (
            "2026-11-10T00:00:00Z",
            "is before the restore window (2026-11-17T12:00:00Z to 2026-12-01T11:55:00Z)",
        ),
    ],
)
def test_a_time_outside_the_restore_window_is_refused_before_anything_is_made(
    to: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    client, stubber = stubbed()
    stubber.add_response("describe_db_instances", described(), {"DBInstanceIdentifier": SOURCE})
    stubber.add_response("describe_db_instance_automated_backups", window(NOW - timedelta(days=14)))
    with stubber:
        code, out, err = run_restore(["--to", to], client, capsys)
        stubber.assert_no_pending_responses()  # and no restore call: the stubber would have refused it
    assert (code, out) == (ops.EXIT_OPS_ERROR, "")
    assert message in err


def test_a_database_without_automated_backups_cannot_be_restored(capsys: pytest.CaptureFixture[str]) -> None:
    client, stubber = stubbed()
    stubber.add_response("describe_db_instances", described(BackupRetentionPeriod=0))
    with stubber:
        code, _, err = run_restore(["--latest"], client, capsys)
    assert code == ops.EXIT_OPS_ERROR
    assert "keeps no automated backups" in err


def test_an_rds_refusal_is_reported_with_its_code(capsys: pytest.CaptureFixture[str]) -> None:
    client, stubber = stubbed()
    stubber.add_response("describe_db_instances", described())
    stubber.add_client_error(
        "restore_db_instance_to_point_in_time",
        service_error_code="InsufficientDBInstanceCapacity",
        service_message="Cannot create a db.t4g.medium in eu-west-1a",
    )
    with stubber:
        code, _, err = run_restore(["--latest"], client, capsys)
    assert code == ops.EXIT_OPS_ERROR
    assert "RDS refused the restore: InsufficientDBInstanceCapacity: Cannot create a db.t4g.medium" in err


def test_the_restore_request_carries_the_stacks_settings_and_the_point_in_time() -> None:
    client, stubber = stubbed()
    moment = NOW - timedelta(hours=1)
    expected = {
        "SourceDBInstanceIdentifier": SOURCE,
        "TargetDBInstanceIdentifier": "djcelery-prod-postgres-r202612011100",
        "DBInstanceClass": "db.t4g.medium",
        "MultiAZ": True,
        "PubliclyAccessible": False,
        "AutoMinorVersionUpgrade": True,
        "CopyTagsToSnapshot": True,
        "DeletionProtection": True,
        "EnableIAMDatabaseAuthentication": True,
        "VpcSecurityGroupIds": ["sg-0db"],
        "Tags": [],
        "StorageType": "gp3",
        "DBSubnetGroupName": "database-subnets",
        "DBParameterGroupName": "database-parameters",
        "RestoreTime": moment,
    }
    stubber.add_response("restore_db_instance_to_point_in_time", {"DBInstance": {}}, expected)
    source = restore.Source(SOURCE, described()["DBInstances"][0])
    with stubber:
        restore.start_restore(
            client, restore.restore_request(source, expected["TargetDBInstanceIdentifier"], moment)
        )
        stubber.assert_no_pending_responses()
    assert "EnableCloudwatchLogsExports" not in expected, (
        "the program turns log exports on, after its log groups"
    )


def test_a_restored_instance_that_fails_is_reported() -> None:
    client, stubber = stubbed()
    for status in ("creating", "incompatible-restore"):
        stubber.add_response("describe_db_instances", described(DBInstanceStatus=status))
    seen: list[str] = []
    with stubber, pytest.raises(restore.RestoreError, match="is incompatible-restore; see its events"):
        restore.wait_until_available(client, "x-r1", sleep=lambda s: None, progress=seen.append)
    assert seen == ["creating", "incompatible-restore"]


def test_a_restore_that_takes_too_long_says_how_to_go_on() -> None:
    client, stubber = stubbed()
    for _ in range(3):
        stubber.add_response("describe_db_instances", described(DBInstanceStatus="creating"))
    ticks = iter([0.0, 100.0, 200.0, 301.0])
    with stubber, pytest.raises(restore.RestoreError, match="still creating after 5 minutes; it keeps going"):
        restore.wait_until_available(
            client, "x-r1", timeout_seconds=300, sleep=lambda s: None, clock=lambda: next(ticks)
        )
