"""The CloudWatch rules (infra/policy/rules/cloudwatch.py): each fires on a realistic mistake in a log
group."""

from __future__ import annotations

import pytest

from infra.policy.rules import cloudwatch
from infra.policy.rules.shared import LOG_GROUP
from tests.infra.policy.mistakes import (
    Baseline,
    Mistake,
    Runs,
    assert_every_rule_has_a_mistake,
    assert_fires_exactly_its_rule,
    drop,
    first,
)

MISTAKES = [
    Mistake("log-group-retention", "prod", first(LOG_GROUP), drop("retentionInDays"), "kept forever"),
]


def test_every_rule_has_a_mistake_that_fires_it() -> None:
    assert_every_rule_has_a_mistake(cloudwatch.RULES, MISTAKES)


@pytest.mark.parametrize("mistake", MISTAKES, ids=str)
def test_mistake_fires_exactly_its_rule(mistake: Mistake, runs: Runs, baseline: Baseline) -> None:
    assert_fires_exactly_its_rule(mistake, runs, baseline)
