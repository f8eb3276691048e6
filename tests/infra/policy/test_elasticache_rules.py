"""The ElastiCache rules (infra/policy/rules/elasticache.py): each fires on a realistic mistake in the
broker."""

from __future__ import annotations

import pytest

from infra.policy.rules import elasticache
from infra.policy.rules.shared import CACHE_PARAMETER_GROUP, REPLICATION_GROUP
from tests.infra.policy.mistakes import (
    Baseline,
    Mistake,
    Runs,
    assert_every_rule_has_a_mistake,
    assert_fires_exactly_its_rule,
    drop,
    only,
    set_parameter,
    set_to,
)

MISTAKES = [
    Mistake(
        "elasticache-transit-encryption",
        "prod",
        only(REPLICATION_GROUP),
        set_to("transitEncryptionEnabled", False),
        "plaintext",
    ),
    Mistake(
        "elasticache-at-rest-encryption",
        "prod",
        only(REPLICATION_GROUP),
        set_to("atRestEncryptionEnabled", False),
        "unencrypted",
    ),
    Mistake("elasticache-auth", "prod", only(REPLICATION_GROUP), drop("authToken"), "no auth token"),
    Mistake(
        "elasticache-non-cluster-mode",
        "prod",
        only(REPLICATION_GROUP),
        set_to("clusterMode", "enabled"),
        "cluster mode",
    ),
    Mistake(
        "elasticache-noeviction",
        "prod",
        only(CACHE_PARAMETER_GROUP),
        set_parameter("maxmemory-policy", "allkeys-lru"),
        "evicting",
    ),
    Mistake(
        "elasticache-noeviction",
        "prod",
        only(REPLICATION_GROUP),
        drop("parameterGroupName"),
        "default parameter group",
    ),
    # Security Hub ElastiCache.2 (docs.aws.amazon.com/securityhub/latest/userguide/elasticache-controls.html)
    # wants minor upgrades, which carry security patches, applied automatically; botocore's
    # CreateReplicationGroup.AutoMinorVersionUpgrade opts in, and AWS defaults it to true, so the
    # mistake is turning it off.
    Mistake(
        "elasticache-auto-minor-version-upgrade",
        "prod",
        only(REPLICATION_GROUP),
        set_to("autoMinorVersionUpgrade", False),
        "no minor upgrades",
    ),
    Mistake(
        "elasticache-automatic-failover",
        "prod",
        only(REPLICATION_GROUP),
        set_to("automaticFailoverEnabled", False),
        "no failover",
    ),
]


def test_every_rule_has_a_mistake_that_fires_it() -> None:
    assert_every_rule_has_a_mistake(elasticache.RULES, MISTAKES)


@pytest.mark.parametrize("mistake", MISTAKES, ids=str)
def test_mistake_fires_exactly_its_rule(mistake: Mistake, runs: Runs, baseline: Baseline) -> None:
    assert_fires_exactly_its_rule(mistake, runs, baseline)
