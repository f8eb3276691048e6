"""A stack at its maxima must fit its database's and broker's connection limits, or it is refused
before anything is declared."""

from __future__ import annotations

import pytest

from infra.data.connections import (
    MAX_CONNECTIONS_CAP,
    MEMORY_PER_CONNECTION_BYTES,
    database_max_connections,
    instance_memory_gib,
)
from infra.stack import validate
from testkit.program import bare_config

GIB = 2**30
# Memory of classes in AWS's "DB instance class types" hardware table (GiB).
DOCUMENTED_MEMORY = {
    "db.t4g.micro": 1,
    "db.t3.small": 2,
    "db.t4g.medium": 4,
    "db.m7g.large": 8,
    "db.m6i.4xlarge": 64,
    "db.r6g.xlarge": 32,
    "db.r7g.16xlarge": 512,
}


@pytest.mark.parametrize(("instance_class", "gib"), DOCUMENTED_MEMORY.items())
def test_the_estimate_stays_under_rds_default_formula(instance_class: str, gib: int) -> None:
    """max_connections = LEAST({DBInstanceClassMemory/9531392}, 5000) (RDS user guide; AWS
    Prescriptive Guidance, max_connections), DBInstanceClassMemory being less than the class's
    memory: the estimate must never promise more than the formula on the full memory."""
    assert instance_memory_gib(instance_class) == gib
    ceiling = min(gib * GIB // MEMORY_PER_CONNECTION_BYTES, MAX_CONNECTIONS_CAP)
    estimate = database_max_connections(instance_class)
    assert estimate is not None and 0.65 * ceiling <= estimate <= ceiling, (instance_class, estimate, ceiling)


def test_an_unknown_class_is_not_guessed() -> None:
    assert database_max_connections("db.x2iedn.metal") is None


def problems(stack: str, **overrides: object) -> dict[str, str]:
    from infra.config.reader import StackConfigError

    try:
        validate(bare_config(stack, overrides))
    except StackConfigError as error:
        return {problem.key: str(problem) for problem in error.problems}
    return {}


def test_a_stack_that_outgrows_its_database_is_refused_with_the_numbers_and_the_ways_out() -> None:
    found = problems("dev", webMaxCount=20)  # 20 tasks x 2 processes x 4 threads on a db.t4g.micro
    message = found["dbInstanceClass"]
    assert "172 connections (web 160, pool default 9, Beat and publisher 2, release 1)" in message
    assert "about 71 that db.t4g.micro leaves the app" in message
    for way_out in ("bigger dbInstanceClass", "gunicornThreads", "webMaxCount", "RDS Proxy"):
        assert way_out in message


def test_a_bigger_class_or_fewer_threads_fits() -> None:
    assert problems("dev", webMaxCount=20, dbInstanceClass="db.t4g.medium") == {}
    assert problems("dev", webMaxCount=8, gunicornThreads=1) == {}


@pytest.mark.parametrize("stack", ["dev", "prod", "pr-1"])
def test_every_shipped_stack_fits(stack: str) -> None:
    assert problems(stack) == {}
