"""The real thing, once: deploy a throwaway stack to AWS, sign up through the ALB, watch the Celery
worker send the email, then destroy and remove the stack whatever happened.

It also checks on the real state what the in-process tests check on the program under mocks: every
ECS task launch waited for what its containers need, the stored release provider holds references
only, the replayed destroy has no blocker, and after the real destroy nothing of the stack is left
(the database's log groups, task definitions, the image repository). And what only AWS can show: a
second preview right after `up` plans no change (a perpetual diff would re-run migrations on every
deploy), a failed deployment reaches the alarm topic's subscribers, a bad web image deployed as a
canary is rolled back by ECS on the load balancer's 5xx alarm, `python -m infra.ops shell`
opens an ECS Exec session in a container with a read-only root file system, and a stack whose
stored registry token has expired still destroys (the janitor's stale pull-request stacks).

Runs only where the Pulumi CLI, Docker (for the image build) and AWS credentials exist, e.g. the
"Cloud smoke test" workflow; everywhere else it is skipped with the reason. The ECS Exec session
also needs the AWS CLI with its Session Manager plugin (GitHub's Ubuntu runners have both). State lives in a
temporary local backend, so an interrupted run leaves nothing in a shared backend.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pytest
import requests
from pulumi import automation as auto

from testkit.engine.destroy import replay_destroy
from testkit.engine.readiness import missing_before_start
from testkit.engine.state import run_from_deployment, stored_by_value
from testkit.program import ProgramRun
from tests.cloud import probes

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT = "djcelery"
HEALTHY_WITHIN_SECONDS = 15 * 60  # targets register and pass the ALB health check after `up`
SENT_WITHIN_SECONDS = 10 * 60  # includes scaling the worker pool up from zero tasks
# The circuit breaker fails a deployment after 3 failed tasks at the least, each a Fargate launch.
DEPLOYMENT_FAILED_WITHIN_SECONDS = 25 * 60
METRICS_WITHIN_SECONDS = 10 * 60  # CloudWatch publishes SNS and EventBridge metrics minutes late
EXEC_SESSION_WITHIN_SECONDS = 5 * 60  # the ECS Exec agent starts after the task does
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
    outputs: dict[str, Any]  # the stack outputs, plain values
    state: ProgramRun  # the real state after `up`, read as the models read a program run
    backend_env: dict[str, str]  # what a `pulumi` command needs to reach this stack's backend
    destroyed: bool = False

    @property
    def web_url(self) -> str:
        return str(self.outputs["webUrl"]).rstrip("/")

    def destroy(self) -> None:
        # An ephemeral stack has no deletion blockers, so a failure here is a bug worth failing for.
        # No refresh, as the workflows destroy: the state's registry token may have expired.
        if not self.destroyed:
            self.stack.destroy(on_output=print, refresh=False)
            self.destroyed = True


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployedSmokeStack]:
    state_dir = tmp_path_factory.mktemp("pulumi-state")
    stack_name = f"smoke-{uuid.uuid4().hex[:8]}"
    backend_env = {
        "PULUMI_BACKEND_URL": state_dir.as_uri(),
        "PULUMI_CONFIG_PASSPHRASE": secrets.token_urlsafe(24),
    }
    options = auto.LocalWorkspaceOptions(env_vars=backend_env, secrets_provider="passphrase")
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
        outputs = {name: output.value for name, output in result.outputs.items()}
        yield DeployedSmokeStack(stack, region, outputs, state, backend_env)
    finally:
        # Destroy (a no-op when the last test did), then remove: that also deletes Pulumi.<stack>.yaml.
        try:
            stack.destroy(on_output=print, refresh=False)
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


def test_a_second_preview_plans_no_change(deployed: DeployedSmokeStack) -> None:
    """Right after `up`, the program and AWS agree: a perpetual diff (a task definition AWS
    normalizes differently, say) would make every deploy a new revision, a release and a rollout.
    `expect_no_changes` makes the preview fail on any planned change."""
    deployed.stack.preview(on_output=print, expect_no_changes=True, diff=True)


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


def test_the_shell_command_opens_an_ecs_exec_session_in_a_web_task(deployed: DeployedSmokeStack) -> None:
    """`python -m infra.ops shell` prints the session line; running it reaches the web container,
    whose root file system is read-only (AWS does not support ECS Exec there, aws/containers-roadmap
    #1359: the stack gives the agent writable volumes, and this is where that is proven), and the
    session is recorded in the stack's exec audit log group."""
    missing = probes.missing_session_tools()
    if missing:
        pytest.fail(f"{missing} (the AWS CLI and its Session Manager plugin)")
    marker = ("ecs-exec-", uuid.uuid4().hex[:12])
    shell = [sys.executable, "-m", "infra.ops", "shell", deployed.stack.name,
             "--command", probes.shell_command(marker)]  # fmt: skip

    def session_output() -> str | None:
        printed = subprocess.run(
            shell, cwd=REPO_ROOT, env={**os.environ, **deployed.backend_env, "AWS_REGION": deployed.region},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if printed.returncode != 0:  # e.g. no running web task yet
            print(printed.stderr)
            return None
        output = probes.run_session(printed.stdout.strip(), timeout_seconds=120)
        if "".join(marker) in output:
            return output
        print(output)  # the agent may still be starting; the last attempt's output is the reason
        return None

    wait_for("an ECS Exec session runs a command in a web task", EXEC_SESSION_WITHIN_SECONDS, session_output)
    logs = boto3.client("logs", region_name=deployed.region)

    def recorded() -> bool | None:
        events = logs.filter_log_events(
            logGroupName=deployed.outputs["execAuditLogGroupName"], filterPattern=f'"{"".join(marker)}"'
        )["events"]
        return True if events else None

    wait_for("the session appears in the exec audit log group", EXEC_SESSION_WITHIN_SECONDS, recorded)


@contextmanager
def failing_web_deployment(deployed: DeployedSmokeStack) -> Iterator[str]:
    """Deploys a web revision whose container exits at once (yields the service name); afterwards
    waits for ECS's circuit breaker to roll back to the deployed revision and retires the broken one."""
    ecs = boto3.client("ecs", region_name=deployed.region)
    outputs = deployed.outputs
    cluster, service = outputs["clusterName"], outputs["webServiceName"]
    broken = probes.failing_revision(ecs, outputs["webTaskDefinitionArn"], outputs["webContainerName"])
    try:
        ecs.update_service(cluster=cluster, service=service, taskDefinition=broken)
        yield service
    finally:
        rolled_back = {"Delay": 15, "MaxAttempts": 80}  # 20 minutes
        ecs.get_waiter("services_stable").wait(cluster=cluster, services=[service], WaiterConfig=rolled_back)
        ecs.deregister_task_definition(taskDefinition=broken)
    [web] = ecs.describe_services(cluster=cluster, services=[service])["services"]
    assert web["taskDefinition"] == outputs["webTaskDefinitionArn"], "the rollback restored another revision"


def test_a_failed_deployment_reaches_the_alarm_topic_subscribers(deployed: DeployedSmokeStack) -> None:
    """ECS's circuit breaker fails a web deployment, the stack's EventBridge rule sends it to the
    alarm topic, and a subscriber gets it (an SQS queue here: what a confirmed e-mail subscriber
    gets). CloudWatch then counts the delivery: the rule's Invocations without FailedInvocations,
    the topic's NumberOfNotificationsDelivered without NumberOfNotificationsFailed (EventBridge and
    SNS metrics in the CloudWatch user guide)."""
    region, topic_arn = deployed.region, deployed.outputs["alarmTopicArn"]
    [rule_name] = [
        resource.state["name"]
        for resource in deployed.state.of_type("aws:cloudwatch/eventRule:EventRule")
        if "ECS Deployment State Change" in resource.inputs.get("eventPattern", "")
    ]
    rule, topic = {"RuleName": rule_name}, {"TopicName": str(topic_arn).rsplit(":", 1)[1]}
    started = datetime.now(UTC)
    with probes.topic_listener(region, topic_arn) as queue_url, failing_web_deployment(deployed) as service:

        def notified() -> str | None:
            # The failure (SERVICE_DEPLOYMENT_FAILED) or the rollback (SERVICE_DEPLOYMENT_IN_PROGRESS
            # "ECS deployment circuit breaker: rolling back"), not an alarm the broken tasks set off.
            events = [text for text in probes.received_messages(region, queue_url) if service in text]
            return next((text for text in events if "SERVICE_DEPLOYMENT_" in text), None)

        wait_for("the failed deployment is notified", DEPLOYMENT_FAILED_WITHIN_SECONDS, notified)

    def counted(namespace: str, metric: str, dimensions: dict[str, str]) -> Callable[[], float | None]:
        return lambda: probes.metric_sum(region, namespace, metric, dimensions, started) or None

    wait_for("the rule's Invocations", METRICS_WITHIN_SECONDS, counted("AWS/Events", "Invocations", rule))
    wait_for("the topic's deliveries", METRICS_WITHIN_SECONDS,
             counted("AWS/SNS", "NumberOfNotificationsDelivered", topic))  # fmt: skip
    assert probes.metric_sum(region, "AWS/Events", "FailedInvocations", rule, started) == 0
    assert probes.metric_sum(region, "AWS/SNS", "NumberOfNotificationsFailed", topic, started) == 0


# A short canary with a large share, so that the bad revision's 5xx show at the load balancer fast.
CANARY_SETTINGS = {
    "webDeployment": "canary",
    "webCanaryPercent": "50",
    "webCanaryMinutes": "3",
    "webBakeMinutes": "1",
    "webRollback5xxPercent": "5",
}
ROLLED_BACK_WITHIN_SECONDS = 25 * 60  # new tasks, two alarm minutes, the rollback itself
READINESS_REQUESTS_PER_SECOND = 2


def test_a_bad_web_image_is_rolled_back_by_the_canary_alarms(deployed: DeployedSmokeStack) -> None:
    """The stack switches to canary web deployments (one canary deployment of the running image,
    which succeeds and moves production traffic to the other target group), a refreshed preview
    plans no change to the listener rules ECS rewrote, then a revision that answers 5xx to every
    request needing its database goes out as a canary: the load balancer's 5xx alarm fires and ECS
    rolls it back by itself, back to the running revision."""
    stack = deployed.stack
    for key, value in CANARY_SETTINGS.items():
        stack.set_config(f"{PROJECT}:{key}", auto.ConfigValue(value))
    outputs = {name: output.value for name, output in stack.up(on_output=print).outputs.items()}
    stack.refresh(on_output=print)
    stack.preview(on_output=print, expect_no_changes=True, diff=True)

    ecs = boto3.client("ecs", region_name=deployed.region)
    cluster, service, good = (
        outputs["clusterName"],
        outputs["webServiceName"],
        outputs["webTaskDefinitionArn"],
    )
    bad = probes.erroring_revision(ecs, good, outputs["webContainerName"])
    started = datetime.now(UTC)
    readiness = f"{str(outputs['webUrl']).rstrip('/')}/readyz"
    try:
        with probes.steady_requests(readiness, READINESS_REQUESTS_PER_SECOND) as statuses:
            ecs.update_service(cluster=cluster, service=service, taskDefinition=bad)
            deployment = wait_for(
                "ECS finishes the bad revision's deployment",
                ROLLED_BACK_WITHIN_SECONDS,
                lambda: probes.finished_deployment(ecs, cluster, service, started),
            )
    finally:
        ecs.deregister_task_definition(taskDefinition=bad)
    assert deployment["status"] == "ROLLBACK_SUCCESSFUL", deployment
    [web] = ecs.describe_services(cluster=cluster, services=[service])["services"]
    assert web["taskDefinition"] == good, "the rollback restored another revision"
    assert 500 <= max(statuses) < 600, "the bad revision never answered a user: no canary traffic?"
    assert statuses[-10:] == [200] * 10, f"the running revision serves again: {statuses[-10:]}"


def test_a_stack_whose_registry_token_expired_destroys_and_leaves_nothing_behind(
    deployed: DeployedSmokeStack,
) -> None:
    """Last in this file: destroys the stack now (the fixture then only removes it) the way the
    workflows destroy a stale pull-request stack, whose stored ECR token is past its 12 hours.
    Waiting 12 hours is no option, so the stored registry password is replaced (`pulumi stack
    export`, edit, `pulumi stack import`) with one ECR refuses, as it refuses an expired one; the
    destroy, without refresh, must not need it. Then it looks at what AWS still has of the stack."""
    exported = deployed.stack.export_stack()
    [image] = [r for r in exported.deployment["resources"] if r["type"] == "docker:index/image:Image"]
    registry = {key: probes.plain(value) for key, value in probes.plain(image["inputs"]["registry"]).items()}
    stored, refused = registry["password"], f"expired-{registry['password']}"
    assert probes.registry_accepts(registry["server"], registry["username"], stored), "control: a fresh token"
    assert not probes.registry_accepts(registry["server"], registry["username"], refused)
    edited, replaced = probes.replace_secret_string(exported.deployment, stored, refused)
    assert replaced, "the state holds no registry password"
    deployed.stack.import_stack(auto.Deployment(version=exported.version, deployment=edited))
    assert probes.replace_secret_string(deployed.stack.export_stack().deployment, stored, refused)[1] == 0

    deployed.destroy()
    assert leftovers_in_aws(deployed.state, deployed.region) == [], "`pulumi destroy` left these behind"
