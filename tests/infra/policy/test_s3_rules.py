"""The S3 rules (infra/policy/rules/s3.py): each fires on a realistic mistake in the media bucket's
settings."""

from __future__ import annotations

import json

import pytest

from infra.policy.rules import s3
from infra.policy.rules.shared import S3_BUCKET_POLICY, S3_PUBLIC_ACCESS_BLOCK, S3_VERSIONING
from tests.infra.policy.mistakes import (
    Baseline,
    Mistake,
    Runs,
    assert_every_rule_has_a_mistake,
    assert_fires_exactly_its_rule,
    media,
    set_to,
)

MISTAKES = [
    Mistake(
        "s3-bucket-not-public",
        "prod",
        media(S3_PUBLIC_ACCESS_BLOCK),
        set_to("restrictPublicBuckets", False),
        "public bucket policies honoured",
    ),
    Mistake(
        "s3-tls-only",
        "prod",
        media(S3_BUCKET_POLICY),
        set_to("policy", json.dumps({"Version": "2012-10-17", "Statement": []})),
        "plain HTTP allowed",
    ),
    Mistake(
        "s3-versioning",
        "prod",
        media(S3_VERSIONING),
        set_to("versioningConfiguration", {"status": "Suspended"}),
        "versioning suspended",
    ),
]


def test_every_rule_has_a_mistake_that_fires_it() -> None:
    assert_every_rule_has_a_mistake(s3.RULES, MISTAKES)


@pytest.mark.parametrize("mistake", MISTAKES, ids=str)
def test_mistake_fires_exactly_its_rule(mistake: Mistake, runs: Runs, baseline: Baseline) -> None:
    assert_fires_exactly_its_rule(mistake, runs, baseline)
