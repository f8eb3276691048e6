"""The KMS rules (infra/policy/rules/kms.py): each fires on a realistic mistake in the key or in what
it should encrypt."""

from __future__ import annotations

import json

import pytest

from infra.policy.rules import kms
from infra.policy.rules.shared import KMS_KEY, LOG_GROUP, RDS_INSTANCE, SECRET
from tests.infra.policy.mistakes import (
    Baseline,
    Inputs,
    Mistake,
    Runs,
    assert_every_rule_has_a_mistake,
    assert_fires_exactly_its_rule,
    drop,
    first,
    only,
    set_to,
)

PUBLIC_KEY_STATEMENT = {
    "Sid": "Anyone",
    "Effect": "Allow",
    "Principal": "*",
    "Action": "kms:Decrypt",
    "Resource": "*",
}


def _add_key_statement(inputs: Inputs) -> None:
    policy = json.loads(inputs["policy"])
    policy["Statement"].append(PUBLIC_KEY_STATEMENT)
    inputs["policy"] = json.dumps(policy)


MISTAKES = [
    Mistake("kms-key-rotation", "prod", only(KMS_KEY), set_to("enableKeyRotation", False), "never rotated"),
    Mistake("kms-key-not-public", "prod", only(KMS_KEY), _add_key_statement, "anyone decrypts"),
    Mistake("customer-managed-key", "prod", only(RDS_INSTANCE), drop("kmsKeyId"), "database on the AWS key"),
    Mistake("customer-managed-key", "prod", first(SECRET), drop("kmsKeyId"), "secret on the AWS key"),
    Mistake("customer-managed-key", "prod", first(LOG_GROUP), drop("kmsKeyId"), "log group on the AWS key"),
]


def test_every_rule_has_a_mistake_that_fires_it() -> None:
    assert_every_rule_has_a_mistake(kms.RULES, MISTAKES)


@pytest.mark.parametrize("mistake", MISTAKES, ids=str)
def test_mistake_fires_exactly_its_rule(mistake: Mistake, runs: Runs, baseline: Baseline) -> None:
    assert_fires_exactly_its_rule(mistake, runs, baseline)
