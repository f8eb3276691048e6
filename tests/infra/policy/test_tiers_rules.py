"""The tier rules (infra/policy/rules/tiers.py): prod protects its stateful resources and serves
HTTPS only, an ephemeral stack has nothing that stops `pulumi destroy`, and neither rule acts on
another tier."""

from __future__ import annotations

import pytest

from infra.policy.rules import tiers
from infra.policy.rules.shared import (
    ECR_REPOSITORY,
    KMS_KEY,
    LISTENER,
    LOAD_BALANCER,
    LOG_GROUP,
    RDS_INSTANCE,
    S3_BUCKET,
    SECRET,
)
from infra.policy.rules.tiers import (
    EPHEMERAL_STACK_DESTROYABLE,
    PREVIEW_LEAVES_SHARED_TO_BASE,
    PROD_HTTPS_ONLY,
    PROD_STATEFUL_PROTECTED,
)
from tests.infra.policy.mistakes import (
    Baseline,
    Inputs,
    Mistake,
    Runs,
    assert_every_rule_has_a_mistake,
    assert_fires_exactly_its_rule,
    first,
    leave_inputs,
    listener,
    listing,
    media,
    only,
    set_to,
)
from tests.infra.policy.policy_bridge import evaluate, tier_config


def _plain_http(inputs: Inputs) -> None:
    """The serving listener turned into plain HTTP (what a stack without a certificate declares)."""
    inputs.update(protocol="HTTP", port=8080)
    inputs.pop("certificateArn", None)
    inputs.pop("sslPolicy", None)


DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"

MISTAKES = [
    Mistake(PROD_HTTPS_ONLY, "prod", listener("HTTPS"), _plain_http, "the app served over plain HTTP"),
    Mistake(
        EPHEMERAL_STACK_DESTROYABLE,
        "ephemeral",
        only(RDS_INSTANCE),
        set_to("deletionProtection", True),
        "protected database",
    ),
    Mistake(
        EPHEMERAL_STACK_DESTROYABLE,
        "ephemeral",
        only(RDS_INSTANCE),
        set_to("skipFinalSnapshot", False),
        "final snapshot",
    ),
    Mistake(
        EPHEMERAL_STACK_DESTROYABLE,
        "ephemeral",
        only(ECR_REPOSITORY),
        set_to("forceDelete", False),
        "repository keeps images",
    ),
    Mistake(
        EPHEMERAL_STACK_DESTROYABLE,
        "ephemeral",
        only(LOAD_BALANCER),
        set_to("enableDeletionProtection", True),
        "protected load balancer",
    ),
    Mistake(
        EPHEMERAL_STACK_DESTROYABLE,
        "ephemeral",
        media(S3_BUCKET),
        set_to("forceDestroy", False),
        "media bucket keeps its files",
    ),
    Mistake(
        PROD_STATEFUL_PROTECTED,
        "prod",
        only(RDS_INSTANCE),
        leave_inputs,
        "unprotected database",
        options={"protect": False},
    ),
    Mistake(
        PROD_STATEFUL_PROTECTED,
        "prod",
        media(S3_BUCKET),
        leave_inputs,
        "unprotected media bucket",
        options={"protect": False},
    ),
    Mistake(
        PROD_STATEFUL_PROTECTED,
        "prod",
        only(KMS_KEY),
        leave_inputs,
        "unprotected key",
        options={"protect": False},
    ),
    Mistake(
        PROD_STATEFUL_PROTECTED,
        "preview-base",
        only(RDS_INSTANCE),
        leave_inputs,
        "unprotected shared database",
        options={"protect": False},
    ),
    Mistake(
        EPHEMERAL_STACK_DESTROYABLE,
        "preview",
        first(LOG_GROUP),
        set_to("deletionProtectionEnabled", True),
        "preview log group kept",
    ),
    Mistake(
        PREVIEW_LEAVES_SHARED_TO_BASE,
        "preview",
        first(SECRET),
        leave_inputs,
        "a preview with its own dashboard",
        as_type=DASHBOARD,
    ),
]


def test_every_rule_has_a_mistake_that_fires_it() -> None:
    assert_every_rule_has_a_mistake(tiers.RULES, MISTAKES)


@pytest.mark.parametrize("mistake", MISTAKES, ids=str)
def test_mistake_fires_exactly_its_rule(mistake: Mistake, runs: Runs, baseline: Baseline) -> None:
    assert_fires_exactly_its_rule(mistake, runs, baseline)


def test_protected_resource_blocks_ephemeral_destroy(runs: Runs, baseline: Baseline) -> None:
    run = runs["ephemeral"]
    database = run.one(RDS_INSTANCE)

    new = [
        v
        for v in evaluate(run.resources, tier_config("ephemeral"), protected=[database.urn])
        if v not in baseline["ephemeral"]
    ]

    assert [(v.rule, v.urn) for v in new] == [(EPHEMERAL_STACK_DESTROYABLE, database.urn)], listing(new)


def test_deletion_blockers_are_allowed_outside_ephemeral_stacks(runs: Runs) -> None:
    # prod runs with deletion protection and `protect`; the ephemeral-only rule must not turn that
    # into a violation.
    run = runs["prod"]
    assert run.one(RDS_INSTANCE).options["protect"], "prod protects its database"
    violations = evaluate(run.resources, tier_config("prod"))
    assert not violations, listing(violations)


def test_plain_http_is_fine_in_dev_and_refused_in_prod(runs: Runs, baseline: Baseline) -> None:
    """The dev stack serves HTTP on port 80; the same declarations in the prod tier are refused."""
    dev = runs["dev"]
    assert not [v for v in baseline["dev"] if v.rule == PROD_HTTPS_ONLY]
    [dev_listener] = dev.of_type(LISTENER)
    as_prod = [v for v in evaluate(dev.resources, tier_config("prod")) if v.rule == PROD_HTTPS_ONLY]
    assert [(v.urn, v.level) for v in as_prod] == [(dev_listener.urn, "mandatory")], listing(as_prod)
    assert "set domainName and hostedZoneId, or certificateArn" in as_prod[0].message
