"""`python -m infra.ops rollback`: ECS's own rollback of an open web deployment, else which image,
the checks before `pulumi up`, and the update itself.

ECS's task definition history is botocore's Stubber (checked against the real API model); the
repository is moto's ECR; `pulumi up` is a recorded stand-in, so the test sees the exact command
and that the stack file is left as it was. The release check that refuses an image older than the
database runs inside that `pulumi up` (tests/infra/release/test_release_gate.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from infra.ops import cli as ops
from infra.ops import rollback
from infra.ops.stack import DeployedStack, OpsError
from tests.infra.ops.test_ops import OUTPUTS, REGION

REPOSITORY = "djcelery-prod-repository"
REPOSITORY_URL = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/{REPOSITORY}"
FAMILY = "djcelery-prod-web"
CURRENT, PREVIOUS, OLDER = ("sha256:" + letter * 64 for letter in "cba")


def image_manifest(layer: str) -> str:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"digest": "sha256:" + layer * 64, "size": 1},
            "layers": [],
        }
    )


def revision_arn(revision: int) -> str:
    return f"arn:aws:ecs:{REGION}:123456789012:task-definition/{FAMILY}:{revision}"


@pytest.fixture
def stack() -> DeployedStack:
    outputs = {
        **OUTPUTS,
        "webTaskDefinitionArn": revision_arn(9),
        "imageRef": f"{REPOSITORY_URL}@{CURRENT}",
        "ecrRepositoryUrl": REPOSITORY_URL,
    }
    return DeployedStack.from_outputs("prod", REGION, outputs)


@pytest.fixture
def ecr(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The stack's repository; it keeps the images pushed here, with the digests the test names."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        client = boto3.client("ecr", region_name=REGION)
        client.create_repository(repositoryName=REPOSITORY)
        for digest, layer in ((CURRENT, "1"), (PREVIOUS, "2")):
            client.put_image(
                repositoryName=REPOSITORY, imageManifest=image_manifest(layer), imageDigest=digest
            )
        yield client


def describes(stubber: Stubber, revision: int, digest: str) -> None:
    stubber.add_response(
        "describe_task_definition",
        {
            "taskDefinition": {
                "taskDefinitionArn": revision_arn(revision),
                "family": FAMILY,
                "revision": revision,
                "containerDefinitions": [{"name": "web", "image": f"{REPOSITORY_URL}@{digest}"}],
            }
        },
        {"taskDefinition": revision_arn(revision)},
    )


DEPLOYMENT_ARN = (
    f"arn:aws:ecs:{REGION}:123456789012:service-deployment/djcelery-prod/djcelery-prod-web/abc123"
)


def open_deployments(stubber: Stubber, status: str | None = None, stage: str = "BAKE_TIME") -> None:
    """ListServiceDeployments of the web service (and DescribeServiceDeployments of what it finds)."""
    listed = [] if status is None else [
        {"serviceDeploymentArn": DEPLOYMENT_ARN, "status": status, "createdAt": "2026-12-07T10:00:00Z"}
    ]  # fmt: skip
    stubber.add_response(
        "list_service_deployments",
        {"serviceDeployments": listed},
        {
            "cluster": OUTPUTS["clusterName"],
            "service": OUTPUTS["webServiceName"],
            "status": [*rollback.OPEN, *rollback.ROLLING_BACK],
        },
    )
    if status is not None:
        stubber.add_response(
            "describe_service_deployments",
            {
                "serviceDeployments": [
                    {"serviceDeploymentArn": DEPLOYMENT_ARN, "status": status, "lifecycleStage": stage}
                ]
            },
            {"serviceDeploymentArns": [DEPLOYMENT_ARN]},
        )


def lists(stubber: Stubber, status: str, revisions: Sequence[int]) -> None:
    stubber.add_response(
        "list_task_definitions",
        {"taskDefinitionArns": [revision_arn(revision) for revision in revisions]},
        {"familyPrefix": FAMILY, "status": status, "sort": "DESC"},
    )


def test_previous_is_the_newest_earlier_revision_with_another_image(
    ecs: tuple[Any, Stubber], ecr: Any, stack: DeployedStack
) -> None:
    client, stubber = ecs
    describes(stubber, 9, CURRENT)
    lists(stubber, "ACTIVE", [9, 8, 7])
    lists(stubber, "INACTIVE", [6])
    describes(stubber, 8, CURRENT)  # a settings change: same image
    describes(stubber, 7, PREVIOUS)

    plan = rollback.plan_rollback(client, ecr, stack, "previous")

    assert (plan.current.digest, plan.target.digest) == (CURRENT, PREVIOUS)
    assert plan.command("djcelery", force=False) == [
        "pulumi",
        "up",
        "--stack",
        "prod",
        "--yes",
        "--non-interactive",
        "--config",
        f"djcelery:imageRef={REPOSITORY_URL}@{PREVIOUS}",
        "--config",
        "djcelery:imageFromStack=",
    ]
    assert plan.command("djcelery", force=True)[-2:] == ["--config", "djcelery:releaseForce=true"]


def test_a_digest_of_the_stack_repository_is_checked_against_what_it_keeps(
    ecs: tuple[Any, Stubber], ecr: Any, stack: DeployedStack
) -> None:
    client, _ = ecs
    assert rollback.plan_rollback(client, ecr, stack, PREVIOUS).target.digest == PREVIOUS
    with pytest.raises(OpsError, match=r"no longer keeps sha256:a{64}.*ecrKeepImages"):
        rollback.plan_rollback(client, ecr, stack, OLDER)


@pytest.mark.parametrize(
    ("to", "refusal"),
    [
        (CURRENT, "already runs"),
        (
            f"123456789012.dkr.ecr.{REGION}.amazonaws.com/djcelery-dev-repository@{PREVIOUS}",
            "not in the stack's",
        ),
        ("djcelery:v1.2", "not an image reference by digest"),
    ],
    ids=["current", "elsewhere", "tag"],
)
def test_targets_that_are_not_a_kept_other_image_are_refused(
    ecs: tuple[Any, Stubber], ecr: Any, stack: DeployedStack, to: str, refusal: str
) -> None:
    with pytest.raises(OpsError, match=refusal):
        rollback.plan_rollback(ecs[0], ecr, stack, to)


def test_previous_without_an_earlier_image_says_to_give_a_digest(
    ecs: tuple[Any, Stubber], ecr: Any, stack: DeployedStack
) -> None:
    client, stubber = ecs
    describes(stubber, 9, CURRENT)
    lists(stubber, "ACTIVE", [9, 8])
    lists(stubber, "INACTIVE", [])
    describes(stubber, 8, CURRENT)
    with pytest.raises(OpsError, match="--to sha256:<digest>"):
        rollback.plan_rollback(client, ecr, stack, "previous")


def test_the_stack_file_is_restored_after_the_update(tmp_path: Path) -> None:
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text("config:\n  djcelery:imageFromStack: organization/djcelery/dev\n")

    def pulumi_up(command: Sequence[str]) -> int:
        stack_file.write_text("config:\n  djcelery:imageRef: changed\n")  # what `--config` does
        return 0

    assert rollback.run_keeping_stack_file(["pulumi", "up"], "prod", pulumi_up, tmp_path) == 0
    assert "imageFromStack" in stack_file.read_text()
    assert rollback.run_keeping_stack_file(["pulumi", "up"], "pr-9", pulumi_up, tmp_path) == 0
    assert not (tmp_path / "Pulumi.pr-9.yaml").exists(), "a stack file that did not exist must not stay"


def test_the_command_line_plans_without_yes_and_rolls_back_with_it(
    ecs: tuple[Any, Stubber], ecr: Any, stack: DeployedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    ran: list[Sequence[str]] = []
    clients = {"ecs": ecs[0], "ecr": ecr}

    def main(*argv: str, exit_code: int = 0) -> int:
        open_deployments(ecs[1])  # none: every web deployment finished
        return ops.main(
            ["rollback", "prod", "--to", PREVIOUS, *argv],
            stack_reader=lambda _name: stack,
            client_factory=lambda service, _region: clients[service],
            runner=lambda command: ran.append(command) or exit_code,
        )

    assert main() == 0 and ran == []
    assert "add --yes" in capsys.readouterr().err
    assert main("--yes") == 0 and ran[0][:3] == ["pulumi", "up", "--stack"]
    assert main("--yes", "--force", exit_code=255) == 255
    assert "--force releases anyway" in capsys.readouterr().err
    assert ran[-1][-1] == "djcelery:releaseForce=true"


def rollback_main(ecs: tuple[Any, Stubber], ecr: Any, stack: DeployedStack, ran: list, *argv: str) -> int:
    clients = {"ecs": ecs[0], "ecr": ecr}
    return ops.main(
        ["rollback", "prod", *argv],
        stack_reader=lambda _name: stack,
        client_factory=lambda service, _region: clients[service],
        runner=lambda command: ran.append(command) or 0,
    )


def test_the_statuses_and_stop_type_are_the_ones_ecs_knows() -> None:
    """botocore ECS model: ServiceDeploymentStatus, and StopServiceDeployment's stopType ROLLBACK
    ("rolls back the service deployment to the previous service revision")."""
    model = botocore.session.get_session().get_service_model("ecs")
    assert {*rollback.OPEN, *rollback.ROLLING_BACK} <= set(model.shape_for("ServiceDeploymentStatus").enum)
    stop = model.operation_model("StopServiceDeployment").input_shape.members["stopType"]
    assert "ROLLBACK" in stop.enum


def test_during_the_bake_ecs_rolls_the_open_deployment_back_without_pulumi_up(
    ecs: tuple[Any, Stubber], ecr: Any, stack: DeployedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    ran: list[Sequence[str]] = []
    open_deployments(ecs[1], "IN_PROGRESS", "BAKE_TIME")
    assert rollback_main(ecs, ecr, stack, ran) == 0
    assert "would have ECS roll back" in capsys.readouterr().err, "nothing is stopped without --yes"

    open_deployments(ecs[1], "IN_PROGRESS", "BAKE_TIME")
    ecs[1].add_response(
        "stop_service_deployment",
        {"serviceDeploymentArn": DEPLOYMENT_ARN},
        {"serviceDeploymentArn": DEPLOYMENT_ARN, "stopType": "ROLLBACK"},
    )
    assert rollback_main(ecs, ecr, stack, ran, "--yes") == 0
    said = capsys.readouterr().err
    assert f"ECS rolls back {DEPLOYMENT_ARN} (IN_PROGRESS, BAKE_TIME)" in said
    assert "rollback prod --to previous --yes" in said, "it says how to make the stack agree"
    assert ran == [], "no `pulumi up`: ECS moves the traffic back"


def test_a_deployment_ecs_already_rolls_back_is_left_to_it(
    ecs: tuple[Any, Stubber], ecr: Any, stack: DeployedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    open_deployments(ecs[1], "ROLLBACK_IN_PROGRESS", "PRODUCTION_TRAFFIC_SHIFT")
    assert rollback_main(ecs, ecr, stack, [], "--yes") == 0
    assert "already rolling back" in capsys.readouterr().err


def test_without_an_open_deployment_it_releases_the_previous_image(
    ecs: tuple[Any, Stubber], ecr: Any, stack: DeployedStack
) -> None:
    stubber = ecs[1]
    open_deployments(stubber)
    describes(stubber, 9, CURRENT)
    lists(stubber, "ACTIVE", [9, 8])
    lists(stubber, "INACTIVE", [])
    describes(stubber, 8, PREVIOUS)
    ran: list[Sequence[str]] = []
    assert rollback_main(ecs, ecr, stack, ran, "--yes") == 0
    assert f"djcelery:imageRef={REPOSITORY_URL}@{PREVIOUS}" in ran[0]


def test_another_image_is_not_released_over_an_open_deployment(
    ecs: tuple[Any, Stubber], ecr: Any, stack: DeployedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    open_deployments(ecs[1], "IN_PROGRESS", "PRODUCTION_TRAFFIC_SHIFT")
    assert rollback_main(ecs, ecr, stack, [], "--to", PREVIOUS, "--yes") == ops.EXIT_OPS_ERROR
    assert "has an open deployment" in capsys.readouterr().err
