"""The program's runs the policy tests change, and what the rules report on them unchanged."""

from __future__ import annotations

import pytest

from testkit.program import run_program
from tests.infra.policy.mistakes import TIER_OF_RUN, Baseline, Runs
from tests.infra.policy.policy_bridge import evaluate, tier_config

CERTIFICATE_ARN = "arn:aws:acm:us-east-1:123456789012:certificate/web"


@pytest.fixture(scope="session")
def runs(request: pytest.FixtureRequest) -> Runs:
    """The three stacks of the session fixtures (prod with the certificate it issues for its
    domain), prod with a certificate the user brings, and an ephemeral stack with HTTPS (where an
    HTTP listener that forwards breaks the redirect rule alone, not prod's HTTPS rule), the example
    preview base and a thin preview on it."""
    return {
        "prod": request.getfixturevalue("prod_run"),
        "prod-https": run_program("prod", {"certificateArn": CERTIFICATE_ARN}),
        "dev": request.getfixturevalue("dev_run"),
        "ephemeral": request.getfixturevalue("ephemeral_run"),
        "ephemeral-https": request.getfixturevalue("custom_run"),
        "preview-base": request.getfixturevalue("preview_base_run"),
        "preview": request.getfixturevalue("preview_run"),
    }


@pytest.fixture(scope="session")
def baseline(runs: Runs) -> Baseline:
    return {name: evaluate(run.resources, tier_config(TIER_OF_RUN[name])) for name, run in runs.items()}
