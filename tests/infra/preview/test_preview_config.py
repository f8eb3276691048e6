"""Preview stack config: the three kinds, the combinations refused before any resource, the rule
priority and the capacity limits, each against the AWS number it rests on."""

from __future__ import annotations

import botocore.session
import pytest

from infra.config.reader import StackConfigError
from infra.data.connections import database_max_connections
from infra.preview.config import MAX_PREVIEW_CAPACITY, StackKind
from infra.preview.priority import MAX_PREVIEW_NUMBER, PREVIEW_RULE_PRIORITY_BASE, rule_priority
from infra.stack import StackConfig, validate
from testkit.program import bare_config

BASE = {"previewBase": True, "previewDomain": "preview.example.com", "previewHostedZoneId": "Z0EXAMPLE1"}
PREVIEW = {"ephemeral": True, "previewOf": "acme/djcelery/preview-base"}


def config_of(stack: str, owner_config: bool = True, **overrides: object) -> StackConfig:
    return validate(bare_config(stack, overrides, owner_config), stack=stack)


def problems(stack: str, owner_config: bool = True, **overrides: object) -> dict[str, str]:
    with pytest.raises(StackConfigError) as failure:
        config_of(stack, owner_config, **overrides)
    return {problem.key: str(problem) for problem in failure.value.problems}


def test_each_kind_follows_its_keys() -> None:
    assert config_of("dev").preview.kind is StackKind.FULL
    base = config_of("preview-base", **BASE, dbInstanceClass="db.t4g.xlarge")
    assert base.preview.kind is StackKind.BASE
    preview = config_of("pr-42", **PREVIEW)
    assert preview.preview.kind is StackKind.PREVIEW
    # The contract's names: role and database pr_<N>, Redis prefix pr-<N>: (^([a-z0-9][a-z0-9-]{0,40}:)?$).
    assert (preview.preview.tenant_name, preview.preview.redis_key_prefix) == ("pr_42", "pr-42:")
    assert preview.app_settings.redis_key_prefix == "pr-42:"
    assert config_of("dev").app_settings.redis_key_prefix == ""


def test_a_stack_is_a_base_or_a_preview_never_both() -> None:
    found = problems("pr-42", **BASE, **PREVIEW)
    assert "previewBase is true" in found["previewOf"]
    assert "previewBase" in found  # and a base is never ephemeral


def test_a_preview_is_an_ephemeral_pull_request_stack() -> None:
    assert (
        "ephemeral is true"
        in problems("pr-42", previewOf="acme/djcelery/preview-base")["previewOf"]
    )
    assert "pull request stack pr-<N>" in problems("staging", **PREVIEW)["previewOf"]
    assert (
        "<org>/<project>/<stack>" in problems("pr-42", ephemeral=True, previewOf="preview-base")["previewOf"]
    )


def test_a_base_needs_its_domain_and_only_a_base_has_one() -> None:
    # Pulumi.preview-base.yaml as the repository ships it: its owner sets the domain.
    found = problems("preview-base", owner_config=False)
    assert "required when previewBase is true" in found["previewDomain"]
    assert "required when previewBase is true" in found["previewHostedZoneId"]
    assert "unless previewBase" in problems("dev", previewDomain="preview.example.com")["previewDomain"]


def test_capacity_stops_at_what_one_load_balancer_holds() -> None:
    """Quotas per Application Load Balancer: 100 rules (not counting default rules) and 100 target
    groups (not adjustable); a preview takes one of each.
    https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-limits.html"""
    assert MAX_PREVIEW_CAPACITY == 100
    assert "from 1 to 100" in problems("preview-base", **BASE, previewCapacity=101)["previewCapacity"]


def test_the_base_database_holds_every_preview_role_at_its_limit() -> None:
    """RDS PostgreSQL max_connections defaults to LEAST(DBInstanceClassMemory/9531392, 5000)
    (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/CHAP_Limits.html#RDS_Limits.MaxConnections);
    a db.t4g.micro (1 GiB) holds about 80, far below 90 previews x 15 connections; a db.t4g.xlarge
    (16 GiB) about 1,600, enough."""
    small = problems("preview-base", **BASE, dbInstanceClass="db.t4g.micro")["dbInstanceClass"]
    assert "90 x 15 = 1350" in small
    assert (database_max_connections("db.t4g.xlarge") or 0) > 90 * 15
    config_of("preview-base", **BASE, dbInstanceClass="db.t4g.xlarge")


def test_a_preview_task_fits_its_connection_limit() -> None:
    """Each web thread and each worker process (and its main process) may hold a connection. A
    preview runs one task (infra/preview/app_service.py): web of 2 x 4 threads, one worker process
    and its main process, Beat and the release need 12 of a CONNECTION LIMIT of 15, whatever the
    pools and webMaxCount say; 4 x 4 threads need 20."""
    config_of("pr-42", **PREVIEW)
    found = problems("pr-42", **PREVIEW, gunicornWorkers=4)["previewConnectionLimit"]
    assert "the 20 connections" in found and "web 16" in found


def test_rule_priority_is_within_what_elbv2_accepts_and_distinct_per_pull_request() -> None:
    """botocore elbv2 shape `RulePriority` (CreateRule's Priority): min 1, max 50000."""
    shape = botocore.session.get_session().get_service_model("elbv2").shape_for("RulePriority")
    low, high = shape.metadata["min"], shape.metadata["max"]
    assert (low, high) == (1, 50000)
    priorities = [rule_priority(number) for number in range(1, MAX_PREVIEW_NUMBER + 1)]
    assert len(set(priorities)) == len(priorities)
    assert low <= min(priorities) and max(priorities) == high
    assert rule_priority(7) == PREVIEW_RULE_PRIORITY_BASE + 7
    for number in (0, MAX_PREVIEW_NUMBER + 1):
        with pytest.raises(ValueError, match="no listener rule priority"):
            rule_priority(number)
    assert "pull request stack" in problems(f"pr-{MAX_PREVIEW_NUMBER + 1}", **PREVIEW)["previewOf"]


def test_a_preview_leaves_the_edge_and_its_keys_to_its_base() -> None:
    """What a preview would silently ignore is refused: its base owns the load balancer, the
    certificate, the firewall and the data stores' encryption; one target group per preview
    leaves no room for a second one (blue/green, canary or linear web deployments)."""
    found = problems(
        "pr-42",
        **PREVIEW,
        domainName="app.example.com",
        wafEnabled=True,
        customerManagedKey=True,
        webDeployment="blue_green",
    )
    for key in ("domainName", "wafEnabled", "customerManagedKey"):
        assert "set it on its base" in found[key], key
    assert "rolling in a preview" in found["webDeployment"]
