"""The network rules (infra/policy/rules/network.py): each fires on a realistic mistake in a security
group's ingress."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from infra.policy.rules import network
from infra.policy.rules.shared import (
    ECS_SERVICE,
    LOAD_BALANCER,
    RDS_INSTANCE,
    REPLICATION_GROUP,
    SECURITY_GROUP,
)
from testkit.program import ProgramRun, RecordedResource
from tests.infra.policy.mistakes import (
    Baseline,
    Inputs,
    Mistake,
    Runs,
    assert_every_rule_has_a_mistake,
    assert_fires_exactly_its_rule,
)
from tests.infra.policy.policy_bridge import outputs


def _group_with_id(run: ProgramRun, group_id: str) -> RecordedResource:
    [group] = [g for g in run.of_type(SECURITY_GROUP) if outputs(g)["id"] == group_id]
    return group


def _security_group_of(store_type: str, key: str) -> Callable[[ProgramRun], RecordedResource]:
    def pick(run: ProgramRun) -> RecordedResource:
        [group_id] = run.one(store_type).inputs[key]
        return _group_with_id(run, group_id)

    return pick


def _alb_security_group(run: ProgramRun) -> RecordedResource:
    [group_id] = run.one(LOAD_BALANCER).inputs["securityGroups"]
    return _group_with_id(run, group_id)


def _app_security_group(run: ProgramRun) -> RecordedResource:
    service = run.of_type(ECS_SERVICE)[0]
    return _group_with_id(run, service.inputs["networkConfiguration"]["securityGroups"][0])


def _add_ingress(cidrs: list[str], port: int) -> Callable[[Inputs], None]:
    rule = {"protocol": "tcp", "fromPort": port, "toPort": port, "cidrBlocks": cidrs}
    return lambda inputs: inputs.setdefault("ingress", []).append(rule)


MISTAKES = [
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
]


def test_every_rule_has_a_mistake_that_fires_it() -> None:
    assert_every_rule_has_a_mistake(network.RULES, MISTAKES)


@pytest.mark.parametrize("mistake", MISTAKES, ids=str)
def test_mistake_fires_exactly_its_rule(mistake: Mistake, runs: Runs, baseline: Baseline) -> None:
    assert_fires_exactly_its_rule(mistake, runs, baseline)
