"""The ECR rules (infra/policy/rules/ecr.py): each fires on a realistic mistake in the image repository."""

from __future__ import annotations

import pytest

from infra.policy.rules import ecr
from infra.policy.rules.shared import ECR_LIFECYCLE_POLICY, ECR_REPOSITORY
from tests.infra.policy.mistakes import (
    Baseline,
    Mistake,
    Runs,
    assert_every_rule_has_a_mistake,
    assert_fires_exactly_its_rule,
    drop,
    only,
    set_to,
)

MISTAKES = [
    Mistake("ecr-scan-on-push", "prod", only(ECR_REPOSITORY), drop("imageScanningConfiguration"), "no scan"),
    Mistake(
        "ecr-immutable-tags", "prod", only(ECR_REPOSITORY), set_to("imageTagMutability", "MUTABLE"), "mutable"
    ),
    Mistake(
        "ecr-lifecycle-policy",
        "prod",
        only(ECR_LIFECYCLE_POLICY),
        set_to("repository", "another-repository"),
        "policy on another repository",
    ),
]


def test_every_rule_has_a_mistake_that_fires_it() -> None:
    assert_every_rule_has_a_mistake(ecr.RULES, MISTAKES)


@pytest.mark.parametrize("mistake", MISTAKES, ids=str)
def test_mistake_fires_exactly_its_rule(mistake: Mistake, runs: Runs, baseline: Baseline) -> None:
    assert_fires_exactly_its_rule(mistake, runs, baseline)
