"""The real thing, once: deploy a throwaway stack to AWS, sign up through the ALB, watch the Celery
worker send the email, then destroy and remove the stack whatever happened.

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
from pathlib import Path
from typing import TypeVar

import boto3
import pytest
import requests
from pulumi import automation as auto

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


@pytest.fixture(scope="module")
def web_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
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
    try:
        stack.set_all_config({
            "aws:region": auto.ConfigValue(boto3.Session().region_name or "us-east-1"),
            f"{PROJECT}:ephemeral": auto.ConfigValue("true"),
            f"{PROJECT}:beatEnabled": auto.ConfigValue("true"),
        })
        result = stack.up(
            on_output=print,
            policy_packs=[str(REPO_ROOT / "infra" / "policy")],
            policy_pack_configs=[str(REPO_ROOT / "infra" / "policy" / "ephemeral.json")],
        )
        yield str(result.outputs["webUrl"].value).rstrip("/")
    finally:
        # Destroy first, then remove (which also deletes Pulumi.<stack>.yaml); an ephemeral stack
        # has no deletion blockers, so a failure here is a bug worth failing the run for.
        try:
            stack.destroy(on_output=print)
        finally:
            stack.workspace.remove_stack(stack_name)


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
