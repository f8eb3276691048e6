"""The real thing, once: deploy a throwaway stack to AWS, sign up through the ALB, watch the Celery
worker send the email, then destroy and remove the stack whatever happened.

It also checks on the real state what the in-process tests check on the program under mocks: every
ECS task launch waited for what its containers need, the stored release provider holds references
only, the replayed destroy has no blocker, and after the real destroy nothing of the stack is left
(the database's log groups, task definitions, the image repository).

Runs only where the Pulumi CLI, Docker (for the image build) and AWS credentials exist, e.g. the
"Cloud smoke test" workflow; everywhere else it is skipped with the reason. State lives in a
temporary local backend, so an interrupted run leaves nothing in a shared backend.
"""

from __future__ import annotations

import secrets
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import boto3
import pytest
import requests
from pulumi import automation as auto

from testkit.engine.destroy import replay_destroy
from testkit.engine.readiness import missing_before_start
from testkit.engine.state import run_from_deployment, stored_by_value
from testkit.program import ProgramRun

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT = "djcelery"
HEALTHY_WITHIN_SECONDS = 15 * 60  # targets register and pass the ALB health check after `up`
SENT_WITHIN_SECONDS = 10 * 60  # includes scaling the worker pool up from zero tasks
POLL_INTERVAL_SECONDS = 10
REQUEST_TIMEOUT_SECONDS = 10

T = TypeVar("T")


def _missing_prerequisite() -> str | None:
    if shutil.which("pulumi") is None:
        return "needs the Pulumi CLI on PATH"
    if shutil.which("docker") is None:
        return "needs Docker to build the app image"
    if boto3.Session().get_credentials() is None:
        return "needs AWS credentials (environment, profile or assumed role)"
    return None


MISSING_PREREQUISITE = _missing_prerequisite()
pytestmark = [
    pytest.mark.cloud,
    pytest.mark.skipif(MISSING_PREREQUISITE is not None, reason=MISSING_PREREQUISITE or ""),
    pytest.mark.timeout(3 * 3600),
]


def wait_for(description: str, within_seconds: float, observe: Callable[[], T | None]) -> T:
    """Polls `observe` until it returns a value; fails with the last observation at the deadline."""
    deadline = time.monotonic() + within_seconds
    last = "not ready at any attempt"
    while time.monotonic() < deadline:
        try:
            value = observe()
        except requests.RequestException as error:
            value, last = None, f"{type(error).__name__}: {error}"
        if value is not None:
            return value
        time.sleep(POLL_INTERVAL_SECONDS)
    raise AssertionError(f"{description}: not within {within_seconds:.0f} s; last: {last}")


@dataclass
class DeployedSmokeStack:
    stack: auto.Stack
    region: str
    web_url: str
    state: ProgramRun  # the real state after `up`, read as the models read a program run
    destroyed: bool = False

    def destroy(self) -> None:
        # An ephemeral stack has no deletion blockers, so a failure here is a bug worth failing for.
        if not self.destroyed:
            self.stack.destroy(on_output=print)
            self.destroyed = True


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployedSmokeStack]:
    state_dir = tmp_path_factory.mktemp("pulumi-state")
    stack_name = f"smoke-{uuid.uuid4().hex[:8]}"
    options = auto.LocalWorkspaceOptions(
        env_vars={
            "PULUMI_BACKEND_URL": state_dir.as_uri(),
            "PULUMI_CONFIG_PASSPHRASE": secrets.token_urlsafe(24),
        },
        secrets_provider="passphrase",
    )
    stack = auto.create_stack(stack_name, work_dir=str(REPO_ROOT), opts=options)
    region = boto3.Session().region_name or "us-east-1"
    try:
        stack.set_all_config(
            {
                "aws:region": auto.ConfigValue(region),
                f"{PROJECT}:ephemeral": auto.ConfigValue("true"),
                f"{PROJECT}:beatEnabled": auto.ConfigValue("true"),
            }
        )
        result = stack.up(
            on_output=print,
            policy_packs=[str(REPO_ROOT / "infra" / "policy")],
            policy_pack_configs=[str(REPO_ROOT / "infra" / "policy" / "ephemeral.json")],
        )
        state = run_from_deployment(stack_name, stack.export_stack().deployment)
        deployed = DeployedSmokeStack(stack, region, str(result.outputs["webUrl"].value).rstrip("/"), state)
        yield deployed
    finally:
        # Destroy (a no-op when the last test did), then remove: that also deletes Pulumi.<stack>.yaml.
        try:
            stack.destroy(on_output=print)
        finally:
            stack.workspace.remove_stack(stack_name)


def leftovers_in_aws(state: ProgramRun, region: str) -> list[str]:
    """What of the destroyed stack AWS still has: log groups (RDS's included), task definitions."""
    logs = boto3.client("logs", region_name=region)
    ecs = boto3.client("ecs", region_name=region)
    left = []
    for database in state.of_type("aws:rds/instance:Instance"):
        prefix = f"/aws/rds/instance/{database.inputs['identifier']}/"
        left += [
            group["logGroupName"]
            for group in logs.describe_log_groups(logGroupNamePrefix=prefix)["logGroups"]
        ]
    for definition in state.of_type("aws:ecs/taskDefinition:TaskDefinition"):
        family = definition.inputs["family"]
        left += ecs.list_task_definitions(familyPrefix=family, status="ACTIVE")["taskDefinitionArns"]
    return left


@pytest.fixture(scope="module")
def web_url(deployed: DeployedSmokeStack) -> str:
    return deployed.web_url


def test_every_task_launch_waited_for_its_needs_in_the_real_state(deployed: DeployedSmokeStack) -> None:
    assert missing_before_start(deployed.state) == {}


def test_the_stored_release_provider_holds_references_only(deployed: DeployedSmokeStack) -> None:
    for resource in deployed.state.of_type("pulumi-python:dynamic:Resource"):
        assert stored_by_value(resource.inputs["__provider"]) == [], resource.name


def test_the_real_state_replays_a_clean_destroy(deployed: DeployedSmokeStack) -> None:
    outcome = replay_destroy(deployed.state)
    assert outcome.clean, outcome


def test_signup_through_the_alb_is_sent_by_the_worker(web_url: str) -> None:
    def healthy() -> bool | None:
        response = requests.get(f"{web_url}/healthz", timeout=REQUEST_TIMEOUT_SECONDS)
        return True if response.status_code == 200 else None

    wait_for(f"GET {web_url}/healthz answers 200", HEALTHY_WITHIN_SECONDS, healthy)

    email = f"smoke-{uuid.uuid4().hex[:12]}@example.com"
    created = requests.post(f"{web_url}/api/signups", json={"email": email}, timeout=REQUEST_TIMEOUT_SECONDS)
    assert created.status_code == 202, f"POST /api/signups: {created.status_code} {created.text[:500]}"
    signup = created.json()
    assert signup["status"] == "queued", signup

    def sent() -> dict | None:
        response = requests.get(f"{web_url}/api/signups/{signup['id']}", timeout=REQUEST_TIMEOUT_SECONDS)
        body = response.json() if response.status_code == 200 else None
        return body if body and body.get("status") == "sent" else None

    final = wait_for(f"signup {signup['id']} reaches status 'sent'", SENT_WITHIN_SECONDS, sent)
    assert final["status"] == "sent"


def test_the_destroy_leaves_nothing_behind(deployed: DeployedSmokeStack) -> None:
    """Last in this file: destroys the stack now (the fixture then only removes it) and looks at
    what AWS still has of it."""
    deployed.destroy()
    assert leftovers_in_aws(deployed.state, deployed.region) == [], "`pulumi destroy` left these behind"
