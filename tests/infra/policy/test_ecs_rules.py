"""The ECS rules (infra/policy/rules/ecs.py): each fires on a realistic mistake in a task definition,
a service or the cluster."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from infra.policy.rules import ecs
from infra.policy.rules.shared import DYNAMIC_RESOURCE, ECS_CLUSTER, ECS_SERVICE, TASK_DEFINITION
from testkit.program import ProgramRun, RecordedResource
from tests.infra.policy.mistakes import (
    Baseline,
    Inputs,
    Mistake,
    Runs,
    assert_every_rule_has_a_mistake,
    assert_fires_exactly_its_rule,
    first,
    only,
    set_to,
)
from tests.infra.policy.policy_bridge import outputs


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


def _worker_canary(run: ProgramRun) -> RecordedResource:
    return run.one(DYNAMIC_RESOURCE, "worker-default-canary")


def _in_first_container(edit: Callable[[Inputs], None]) -> Callable[[Inputs], None]:
    def change(inputs: Inputs) -> None:
        containers = json.loads(inputs["containerDefinitions"])
        edit(containers[0])
        inputs["containerDefinitions"] = json.dumps(containers)

    return change


def _add_environment(name: str, value: str) -> Callable[[Inputs], None]:
    return _in_first_container(
        lambda c: c.setdefault("environment", []).append({"name": name, "value": value})
    )


def _replace_environment(name: str, value: str) -> Callable[[Inputs], None]:
    def replace(container: Inputs) -> None:
        container["environment"] = [
            {"name": name, "value": value} if item["name"] == name else item
            for item in container["environment"]
        ]

    return _in_first_container(replace)


def _exec_logging(logging: str) -> Callable[[Inputs], None]:
    return lambda inputs: inputs["configuration"]["executeCommandConfiguration"].update(logging=logging)


MISTAKES = [
    Mistake(
        "ecs-not-privileged",
        "prod",
        first(TASK_DEFINITION),
        _in_first_container(lambda c: c.update(privileged=True)),
        "privileged",
    ),
    Mistake(
        "ecs-read-only-root-filesystem",
        "prod",
        first(TASK_DEFINITION),
        _in_first_container(lambda c: c.pop("readonlyRootFilesystem")),
        "writable root",
    ),
    Mistake(
        "ecs-non-root-user",
        "prod",
        first(TASK_DEFINITION),
        _in_first_container(lambda c: c.update(user="0")),
        "root user",
    ),
    Mistake(
        "ecs-awsvpc-network-mode", "prod", first(TASK_DEFINITION), set_to("networkMode", "bridge"), "bridge"
    ),
    Mistake(
        "ecs-log-configuration",
        "prod",
        first(TASK_DEFINITION),
        _in_first_container(lambda c: c.pop("logConfiguration")),
        "no logs",
    ),
    Mistake(
        "ecs-no-secrets-in-environment",
        "prod",
        first(TASK_DEFINITION),
        _add_environment("DJANGO_SECRET_KEY", "not-in-secrets"),
        "secret key in environment",
    ),
    Mistake(
        "ecs-no-secrets-in-environment",
        "prod",
        first(TASK_DEFINITION),
        _add_environment("BROKER", "rediss://:token@broker:6379/0"),
        "URL with password in environment",
    ),
    Mistake(
        "ecs-no-secrets-in-environment",
        "prod",
        first(TASK_DEFINITION),
        _replace_environment("REDIS_KEY_PREFIX", "c2VjcmV0LXRva2Vu"),
        "a key-prefix variable carrying something else than a key prefix",
    ),
    Mistake(
        "ecs-no-public-ip-behind-nat",
        "prod",
        first(ECS_SERVICE),
        lambda inputs: inputs["networkConfiguration"].update(assignPublicIp=True),
        "public IP",
    ),
    Mistake("ecs-single-beat", "prod", _beat_service, set_to("desiredCount", 2), "two schedulers"),
    Mistake(
        "ecs-single-beat",
        "prod",
        _beat_service,
        set_to("deploymentMaximumPercent", 200),
        "overlapping deploy",
    ),
    Mistake(
        "ecs-beat-stop-before-start",
        "prod",
        _beat_service,
        set_to("deploymentConfiguration", {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": "5"}),
        "blue/green Beat",
    ),
    Mistake(
        "ecs-beat-stop-before-start",
        "prod",
        _beat_service,
        set_to("deploymentMinimumHealthyPercent", 100),
        "start-before-stop Beat",
    ),
    Mistake(
        "ecs-beat-stop-before-start",
        "prod",
        _worker_canary,
        lambda inputs: inputs.update(
            task_definition_arn=inputs["task_definition_arn"].replace("worker-default", "beat")
        ),
        "a canary of Beat",
    ),
    Mistake("ecs-exec-audit-logging", "prod", only(ECS_CLUSTER), _exec_logging("DEFAULT"), "task log groups"),
    Mistake("ecs-exec-audit-logging", "dev", only(ECS_CLUSTER), _exec_logging("NONE"), "unrecorded sessions"),
]


def test_every_rule_has_a_mistake_that_fires_it() -> None:
    assert_every_rule_has_a_mistake(ecs.RULES, MISTAKES)


@pytest.mark.parametrize("mistake", MISTAKES, ids=str)
def test_mistake_fires_exactly_its_rule(mistake: Mistake, runs: Runs, baseline: Baseline) -> None:
    assert_fires_exactly_its_rule(mistake, runs, baseline)
