"""What the workflows promise: previews on pull requests, deploys per stack, PR stacks that are
destroyed under the same name they were created with, policy packs, pinned actions, least privilege.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from testkit.workflow_scripts import workflow_script
from tests.delivery.workflows import (
    ACTION_FILES,
    GITHUB_DIR,
    REPO_ROOT,
    load,
    pulumi_steps,
    steps,
    triggers,
    workflow,
    workflow_files,
)

PR_STACK = "pr-${{ github.event.pull_request.number }}"
PLANNED_TIER = "${{ needs.plan.outputs.policy-tier }}"
POLICY_PACK = "infra/policy"
POLICY_TIERS = {"dev", "prod", "ephemeral", "preview"}
REMOTE_USES = re.compile(r"^\s*-?\s*uses:\s*(?P<ref>[^./\s][^\s]*)(?P<comment>.*)$", re.MULTILINE)
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"^\s+# v\d+\.\d+\.\d+$")


def called_workflow(job: dict[str, Any]) -> dict[str, Any]:
    return load(REPO_ROOT / job["uses"])


def test_preview_runs_on_pull_requests_for_dev_and_prod_with_the_diff_commented() -> None:
    preview = workflow("preview.yml")
    assert "pull_request" in triggers(preview)
    job = preview["jobs"]["preview"]
    assert job["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    [step] = pulumi_steps(preview, "preview")
    assert step["with"]["stack-name"] == "${{ matrix.stack }}"
    assert step["with"]["comment-on-pr"] is True, "the preview diff must be posted on the pull request"
    assert job["permissions"]["pull-requests"] == "write"


def test_every_preview_and_update_applies_the_policy_pack_of_its_tier() -> None:
    commands = [("preview.yml", "preview"), ("pulumi-up.yml", "up")]
    for name, command in commands:
        for step in pulumi_steps(workflow(name), command):
            assert step["with"]["policyPacks"] == POLICY_PACK, f"{name}: {command} without the policy pack"
            config = step["with"]["policyPackConfigs"]
            assert re.fullmatch(rf"{POLICY_PACK}/\$\{{\{{ [\w.-]+ \}}\}}\.json", config), (name, config)
    # The tiers the expressions above resolve to: the preview matrix and every caller of pulumi-up.
    tiers = set(workflow("preview.yml")["jobs"]["preview"]["strategy"]["matrix"]["stack"])
    for job in _callers_of("pulumi-up.yml"):
        tier = job["with"]["policy-tier"]
        # A PR stack's tier is its kind's, printed by the plan step (.github/scripts/pr_stacks.py).
        tiers |= set(workflow_script("pr_stacks").POLICY_TIERS.values()) if tier == PLANNED_TIER else {tier}
    assert tiers == POLICY_TIERS
    for tier in tiers:
        assert (REPO_ROOT / POLICY_PACK / f"{tier}.json").is_file(), f"no policy config for tier {tier}"


def test_merge_to_main_deploys_dev_and_tags_or_manual_runs_deploy_prod_behind_its_environment() -> None:
    deploy = workflow("deploy.yml")
    on = triggers(deploy)
    assert on["push"]["branches"] == ["main"]
    assert on["push"]["tags"] == ["v*"]
    assert "workflow_dispatch" in on
    dev, prod = deploy["jobs"]["dev"], deploy["jobs"]["prod"]
    assert dev["uses"] == prod["uses"] == "./.github/workflows/pulumi-up.yml"
    assert dev["with"] == {"stack": "dev", "environment": "dev", "policy-tier": "dev"}
    assert prod["with"] == {"stack": "prod", "environment": "prod", "policy-tier": "prod"}
    assert "refs/heads/main" in dev["if"]
    assert "refs/tags/v" in prod["if"] and "workflow_dispatch" in prod["if"]
    up_job = workflow("pulumi-up.yml")["jobs"]["up"]
    assert up_job["environment"]["name"] == "${{ inputs.environment }}"


def test_pr_stack_is_created_on_open_and_push_and_destroyed_under_the_same_name_on_close() -> None:
    pr_stack = workflow("pr-stack.yml")
    types = set(triggers(pr_stack)["pull_request"]["types"])
    assert {"opened", "synchronize", "reopened", "labeled", "closed", "unlabeled"} <= types
    plan, up, destroy = pr_stack["jobs"]["plan"], pr_stack["jobs"]["up"], pr_stack["jobs"]["destroy"]
    assert up["uses"] == "./.github/workflows/pulumi-up.yml"
    assert destroy["uses"] == "./.github/workflows/pulumi-destroy.yml"
    assert up["with"]["stack"] == destroy["with"]["stack"] == PR_STACK
    assert up["with"]["environment"] == "ephemeral" and up["with"]["policy-tier"] == PLANNED_TIER
    assert up["with"]["create-stack"] is True, "a PR stack does not exist before its first update"
    assert up["needs"] == "plan", "the plan decides the kind (thin preview or full copy) first"
    assert "'closed'" in destroy["if"] and "!= 'closed'" in plan["if"]
    # Every pull request gets a stack; a label change matters only for the full-copy label.
    assert "'full-stack'" in plan["if"] and "pr-stack" not in plan["if"]


def test_pr_stacks_take_their_kind_and_configuration_from_the_plan() -> None:
    pr_stack = workflow("pr-stack.yml")
    [plan_step] = pr_stack["jobs"]["plan"]["steps"][-1:]
    assert "pr_stacks.py plan" in plan_step["run"]
    assert plan_step["env"]["PREVIEW_BASE"] == "${{ vars.PREVIEW_BASE_STACK }}"
    assert "PR_STACK_BEAT_ENABLED" in plan_step["env"]["BEAT_ENABLED"]
    assert pr_stack["jobs"]["up"]["with"]["config-map"] == "${{ needs.plan.outputs.config-map }}"
    project = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "djcelery"
    assert {"ephemeral", "beatEnabled"} <= set(project["config"]), "the keys PR stacks set must exist"


def test_the_pull_request_comment_quotes_the_url_and_the_time_of_the_update() -> None:
    comment = workflow("pr-stack.yml")["jobs"]["comment"]
    assert set(comment["needs"]) == {"plan", "up"}
    assert comment["permissions"]["pull-requests"] == "write"
    [step] = [step for step in comment["steps"] if "pr_stacks.py comment" in step.get("run", "")]
    assert step["env"]["WEB_URL"] == "${{ needs.up.outputs.web-url }}"
    assert step["env"]["UP_SECONDS"] == "${{ needs.up.outputs.up-seconds }}"
    up = workflow("pulumi-up.yml")
    outputs = triggers(up)["workflow_call"]["outputs"]
    assert outputs["up-seconds"]["value"] == "${{ jobs.up.outputs.up-seconds }}"
    ids = [step.get("id") for step in up["jobs"]["up"]["steps"]]
    assert ids.index("clock") < ids.index("pulumi") < ids.index("timing"), "the clock runs around the update"


def test_destroy_runs_pulumi_destroy_then_removes_the_stack() -> None:
    destroy = workflow("pulumi-destroy.yml")
    [step] = pulumi_steps(destroy, "destroy")
    assert step["with"]["stack-name"] == "${{ inputs.stack }}"
    assert step["with"]["remove"] is True, "`remove: true` runs `pulumi stack rm` after the destroy"
    lookup = next(step for step in steps(destroy) if step.get("id") == "lookup")
    assert "pr_stacks.py exists" in lookup["run"]
    assert step["if"] == "steps.lookup.outputs.exists == 'true'", "a missing stack must not fail the job"


def test_no_destroy_refreshes_with_the_registry_credentials_stored_in_state() -> None:
    """The state keeps the image's registry password from an ECR token valid 12 hours (ECR
    GetAuthorizationToken), and a refresh reads resources with the credentials stored in state
    (pulumi/pulumi-docker-build#121): a stale PR stack, the janitor's kind, would fail to destroy.
    No workflow destroys with a refresh, and the project does not turn refresh on for every command
    (Pulumi.yaml reference: `options.refresh: always`)."""
    destroys = [step for path in workflow_files() for step in pulumi_steps(load(path), "destroy")]
    assert destroys, "no workflow destroys a stack"
    for step in destroys:
        stack = step["with"]["stack-name"]
        assert step["with"].get("refresh", False) is False, f"the destroy of {stack} refreshes"
    for path in workflow_files():
        for step in steps(load(path)):
            command = step.get("run", "")
            assert not ("pulumi destroy" in command and "--refresh" in command), f"{path.name}: {command}"
    project = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())
    assert project.get("options", {}).get("refresh") != "always"


def test_janitor_runs_on_a_schedule_and_destroys_through_the_same_workflow() -> None:
    janitor = workflow("pr-stack-janitor.yml")
    on = triggers(janitor)
    assert on["schedule"] and "workflow_dispatch" in on
    find = janitor["jobs"]["find"]
    assert "pr_stacks.py stale" in find["steps"][-1]["run"]
    assert "PR_STACK_MAX_AGE_DAYS" in find["env"]["MAX_AGE_DAYS"], "the age limit must be configurable"
    destroy = janitor["jobs"]["destroy"]
    assert destroy["uses"] == "./.github/workflows/pulumi-destroy.yml"
    assert destroy["with"]["stack"] == "${{ matrix.stack }}"


def test_janitor_reconciles_the_preview_base_after_the_destroys_and_removes_only_when_asked() -> None:
    janitor = workflow("pr-stack-janitor.yml")
    reconcile = janitor["jobs"]["reconcile"]
    assert set(reconcile["needs"]) == {"find", "destroy"} and "always()" in reconcile["if"]
    assert "vars.PREVIEW_BASE_STACK" in reconcile["if"], "no base, nothing to reconcile"
    runs = [step.get("run", "") for step in reconcile["steps"]]
    assert any("preview_base.py routes" in run for run in runs)
    # The orphans command runs in the base's tenant task (preview_base.py tenants).
    assert any("preview_base.py tenants" in run and '--keep "$KEEP"' in run for run in runs)
    dispatch = triggers(janitor)["workflow_dispatch"]["inputs"]["remove-orphans"]
    assert dispatch["type"] == "boolean" and dispatch["default"] is False, "reports unless asked to remove"
    assert all("--remove" not in run or "REMOVE_ORPHANS" in run for run in runs)


def test_each_stack_has_one_concurrency_group_that_never_cancels_an_update() -> None:
    groups = {}
    for name, job_id in [("pulumi-up.yml", "up"), ("pulumi-destroy.yml", "destroy")]:
        concurrency = workflow(name)["jobs"][job_id]["concurrency"]
        assert concurrency["cancel-in-progress"] is False, f"{name}: an interrupted update corrupts state"
        groups[name] = concurrency["group"]
    assert groups["pulumi-up.yml"] == groups["pulumi-destroy.yml"] == "pulumi-${{ inputs.stack }}"


def test_reusable_workflow_calls_match_their_declared_inputs_and_secrets() -> None:
    for path in workflow_files():
        for job_id, job in load(path)["jobs"].items():
            if not job.get("uses", "").startswith("./"):
                continue
            call = triggers(called_workflow(job))["workflow_call"]
            declared, passed = call.get("inputs", {}), job.get("with", {})
            where = f"{path.name} job {job_id}"
            undeclared = set(passed) - set(declared)
            assert not undeclared, f"{where} passes undeclared inputs {undeclared}"
            required = {name for name, spec in declared.items() if spec.get("required")}
            assert required <= set(passed), f"{where} misses required inputs {required - set(passed)}"
            assert set(job.get("secrets", {})) <= set(call.get("secrets", {})), f"{where}: undeclared secrets"
            assert job.get("secrets") != "inherit", f"{where}: pass secrets by name"


def test_local_action_calls_match_the_action_inputs() -> None:
    for path in workflow_files():
        for step in steps(load(path)):
            if step.get("uses", "").startswith("./.github/actions/"):
                action = load(REPO_ROOT / step["uses"] / "action.yml")
                declared, passed = action["inputs"], step.get("with", {})
                required = {name for name, spec in declared.items() if spec.get("required")}
                assert required <= set(passed) <= set(declared), (path.name, step["uses"], sorted(passed))


@pytest.mark.parametrize("path", [*workflow_files(), *ACTION_FILES], ids=lambda path: path.name)
def test_third_party_actions_are_pinned_to_a_commit_with_its_version(path) -> None:
    for match in REMOTE_USES.finditer(path.read_text()):
        ref = match["ref"]
        assert PINNED.match(ref), f"{path.name}: {ref} is not pinned to a full commit SHA"
        assert VERSION_COMMENT.match(match["comment"]), f"{path.name}: {ref} lacks a `# vX.Y.Z` comment"


def test_one_version_per_action() -> None:
    versions: dict[str, set[str]] = {}
    for path in [*workflow_files(), *ACTION_FILES]:
        for match in REMOTE_USES.finditer(path.read_text()):
            action, sha = match["ref"].split("@")
            versions.setdefault(action, set()).add(sha)
    assert {action: shas for action, shas in versions.items() if len(shas) > 1} == {}


@pytest.mark.parametrize("path", workflow_files(), ids=lambda path: path.name)
def test_permissions_are_empty_by_default_and_granted_per_job(path) -> None:
    document = load(path)
    assert document["permissions"] == {}, f"{path.name}: set `permissions: {{}}` at the top"
    for job_id, job in document["jobs"].items():
        permissions = job.get("permissions")
        assert isinstance(permissions, dict), f"{path.name} job {job_id} must list its permissions"
        assert set(permissions.values()) <= {"read", "write"}
        assert permissions.get("contents") in {"read", None}, f"{path.name} job {job_id} writes the code"


def test_aws_access_only_through_oidc_role_assumption() -> None:
    everything = "\n".join(path.read_text() for path in [*workflow_files(), *ACTION_FILES])
    assert "aws-access-key-id" not in everything and "AWS_SECRET_ACCESS_KEY" not in everything
    setup = load(GITHUB_DIR / "actions" / "pulumi-setup" / "action.yml")
    [credentials] = [step for step in steps(setup) if "configure-aws-credentials" in step.get("uses", "")]
    assert credentials["with"]["role-to-assume"] == "${{ inputs.role-to-assume }}"
    # Every job that assumes a role may request an OIDC token, and no other job may.
    for path in workflow_files():
        for job_id, job in load(path)["jobs"].items():
            assumes_role = any(
                step.get("uses") == "./.github/actions/pulumi-setup" for step in job.get("steps", [])
            )
            calls_deploying_workflow = job.get("uses", "").startswith("./.github/workflows/pulumi-")
            wants_token = job.get("permissions", {}).get("id-token") == "write"
            assert wants_token == (assumes_role or calls_deploying_workflow), f"{path.name} job {job_id}"


def test_checkouts_do_not_keep_the_token() -> None:
    for path in workflow_files():
        for step in steps(load(path)):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, path.name


def test_pulumi_cli_version_matches_the_sdk_pin() -> None:
    cli_version = (GITHUB_DIR / "pulumi.version").read_text().strip()
    constraints = (REPO_ROOT / "constraints.txt").read_text()
    assert re.search(rf"^pulumi=={re.escape(cli_version)}$", constraints, re.MULTILINE), (
        f".github/pulumi.version ({cli_version}) differs from the pulumi pin in constraints.txt"
    )
    for path in workflow_files():
        for step in steps(load(path)):
            if step.get("uses", "").startswith("pulumi/actions@"):
                assert step["with"]["pulumi-version-file"] == ".github/pulumi.version", path.name


def test_every_repository_variable_and_secret_is_documented() -> None:
    docs = (REPO_ROOT / "docs" / "delivery.md").read_text()
    used = set()
    for path in [*workflow_files(), *ACTION_FILES]:
        used |= set(re.findall(r"\b(?:vars|secrets)\.([A-Z_][A-Z0-9_]*)", path.read_text()))
    used.discard("GITHUB_TOKEN")
    undocumented = sorted(name for name in used if f"`{name}`" not in docs)
    assert undocumented == [], f"docs/delivery.md does not explain {undocumented}"


def test_tests_workflow_runs_the_readme_command_with_postgres_and_redis() -> None:
    ci = workflow("ci.yml")
    assert {"push", "pull_request"} <= set(triggers(ci))
    job = ci["jobs"]["test"]
    assert set(job["services"]) == {"postgres", "redis"}
    assert job["steps"][-1]["run"] == "scripts/test"
    assert job["env"]["DATABASE_URL"].startswith("postgres://") and job["env"]["REDIS_URL"].startswith("redis://")


def _callers_of(reusable: str) -> list[dict[str, Any]]:
    return [
        job
        for path in workflow_files()
        for job in load(path)["jobs"].values()
        if job.get("uses") == f"./.github/workflows/{reusable}"
    ]
