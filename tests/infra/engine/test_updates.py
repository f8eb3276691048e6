"""Updates the real engine and AWS would refuse or get wrong, caught before the first `pulumi up`."""

from __future__ import annotations

import pytest

from testkit.engine.processes import Project
from testkit.program import ProgramRun, run_program

ECS_SERVICE = "aws:ecs/service:Service"


def strategies(run: ProgramRun) -> dict[str, object]:
    return {
        service.name: service.inputs["capacityProviderStrategies"] for service in run.of_type(ECS_SERVICE)
    }


def test_switching_spot_on_or_off_forces_a_new_deployment(dev_run: ProgramRun) -> None:
    """The AWS provider refuses a capacity provider change without force_new_deployment."""
    on_demand = run_program("dev", {"webSpot": False, "beatSpot": False})
    changed = {
        name for name, strategy in strategies(on_demand).items() if strategy != strategies(dev_run)[name]
    }
    assert changed == {"web-service", "beat-service"}, changed
    for service in on_demand.of_type(ECS_SERVICE):
        assert service.inputs["forceNewDeployment"] is True, f"{service.name}: a Spot switch would be refused"


@pytest.mark.parametrize(
    ("run_name", "kept"), [("dev_run", True), ("prod_run", True), ("ephemeral_run", False)]
)
def test_previous_task_definition_revisions_stay_registered(run_name: str, kept: bool, request) -> None:
    """ECS rolls back to the previous revision; a deregistered (INACTIVE) one cannot start."""
    run: ProgramRun = request.getfixturevalue(run_name)
    for definition in run.of_type("aws:ecs/taskDefinition:TaskDefinition"):
        assert definition.inputs.get("skipDestroy", False) is kept, definition.name


@pytest.mark.parametrize("run_name", ["dev_run", "prod_run"])
def test_the_database_log_groups_are_the_programs_with_a_retention(run_name: str, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    database = run.one("aws:rds/instance:Instance")
    exported = database.inputs["enabledCloudwatchLogsExports"]
    groups = {group.inputs["name"]: group for group in run.of_type("aws:cloudwatch/logGroup:LogGroup")}
    for log in exported:
        name = f"/aws/rds/instance/{database.inputs['identifier']}/{log}"
        assert name in groups, f"RDS would create {name} itself, kept forever and left behind by destroy"
        assert groups[name].inputs["retentionInDays"] > 0
        assert groups[name].urn in database.dependencies, "it must exist before RDS exports to it"


def test_pulumi_install_finds_the_requirements_and_installs_the_project() -> None:
    project = Project.load()
    requirements = (project.program_dir / "requirements.txt").read_text().split()
    assert "-e" in requirements and "." in requirements, "the program imports its own package"
