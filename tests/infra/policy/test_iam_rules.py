"""The IAM rules (infra/policy/rules/iam.py): each fires on a realistic mistake in a role's policy."""

from __future__ import annotations

import json

import pytest

from infra.policy.rules import iam
from infra.policy.rules.shared import IAM_ROLE_POLICY
from tests.infra.policy.mistakes import (
    Baseline,
    Mistake,
    Runs,
    assert_every_rule_has_a_mistake,
    assert_fires_exactly_its_rule,
    first,
    set_to,
)

ADMIN_POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)
DECRYPT_ALL_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "AnyKey", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}],
    }
)

MISTAKES = [
    Mistake(
        "iam-no-full-admin", "prod", first(IAM_ROLE_POLICY), set_to("policy", ADMIN_POLICY), "admin policy"
    ),
    Mistake(
        "iam-no-decrypt-with-every-key",
        "prod",
        first(IAM_ROLE_POLICY),
        set_to("policy", DECRYPT_ALL_POLICY),
        "any key",
    ),
]


def test_every_rule_has_a_mistake_that_fires_it() -> None:
    assert_every_rule_has_a_mistake(iam.RULES, MISTAKES)


@pytest.mark.parametrize("mistake", MISTAKES, ids=str)
def test_mistake_fires_exactly_its_rule(mistake: Mistake, runs: Runs, baseline: Baseline) -> None:
    assert_fires_exactly_its_rule(mistake, runs, baseline)
