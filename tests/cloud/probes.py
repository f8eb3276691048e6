"""What the cloud smoke test does to a deployed stack besides using it: a web deployment that ECS
judges failed, a web revision that answers 5xx, steady traffic, a listener on the alarm topic,
CloudWatch sums, an ECS Exec session, and a registry password in the stored state that ECR refuses.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import boto3
import requests

# Pulumi's envelope for a secret value in an exported deployment (apitype.SecretV1).
SECRET_SIGNATURE = "4dabf18193072939515e22adb298388d"
# Port 9 (discard): nothing listens there in a task, so every connection is refused at once.
UNREACHABLE_DATABASE_URL = "postgres://nobody@127.0.0.1:9/nowhere"


# --- A deployment ECS judges failed -------------------------------------------------------------
def failing_revision(ecs: Any, task_definition_arn: str, container: str) -> str:
    """Registers a revision of the task definition whose `container` exits 3 at once: its tasks never
    become healthy, so the deployment circuit breaker fails the deployment and rolls it back."""
    definition = ecs.describe_task_definition(taskDefinition=task_definition_arn)["taskDefinition"]
    accepted = ecs.meta.service_model.operation_model("RegisterTaskDefinition").input_shape.members
    revision = {key: value for key, value in definition.items() if key in accepted}
    for container_definition in revision["containerDefinitions"]:
        if container_definition["name"] == container:
            container_definition["command"] = ["python", "-c", "raise SystemExit(3)"]
    return str(ecs.register_task_definition(**revision)["taskDefinition"]["taskDefinitionArn"])


def erroring_revision(ecs: Any, task_definition_arn: str, container: str) -> str:
    """Registers a revision of the web task definition that starts, passes the ALB health check
    (/healthz touches no database) and answers 5xx to what needs its database: a bad web image, as
    far as users and the load balancer can tell."""
    definition = ecs.describe_task_definition(taskDefinition=task_definition_arn)["taskDefinition"]
    accepted = ecs.meta.service_model.operation_model("RegisterTaskDefinition").input_shape.members
    revision = with_unreachable_database(
        {key: value for key, value in definition.items() if key in accepted}, container
    )
    return str(ecs.register_task_definition(**revision)["taskDefinition"]["taskDefinitionArn"])


def with_unreachable_database(revision: dict[str, Any], container: str) -> dict[str, Any]:
    """`revision` with `container`'s DATABASE_URL pointing at a port nothing listens on."""
    edited = json.loads(json.dumps(revision))
    for definition in edited["containerDefinitions"]:
        if definition["name"] == container:
            definition["secrets"] = [
                item for item in definition.get("secrets", []) if item["name"] != "DATABASE_URL"
            ]
            definition["environment"] = [
                *definition.get("environment", []),
                {"name": "DATABASE_URL", "value": UNREACHABLE_DATABASE_URL},
            ]
    return edited


@contextmanager
def steady_requests(url: str, per_second: float) -> Iterator[list[int]]:
    """GETs `url` at a steady rate in the background; yields the status codes as they come."""
    statuses: list[int] = []
    stop = threading.Event()

    def send() -> None:
        while not stop.wait(1 / per_second):
            try:
                statuses.append(requests.get(url, timeout=10).status_code)
            except requests.RequestException:
                statuses.append(0)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        yield statuses
    finally:
        stop.set()
        sender.join(15)


def finished_deployment(ecs: Any, cluster: str, service: str, since: datetime) -> dict[str, Any] | None:
    """The service's newest deployment started after `since`, once ECS has finished it (or None)."""
    listed = ecs.list_service_deployments(cluster=cluster, service=service, createdAt={"after": since})
    deployments = sorted(listed.get("serviceDeployments", []), key=lambda item: item["createdAt"])
    if not deployments or deployments[-1]["status"] in (
        "PENDING",
        "IN_PROGRESS",
        "ROLLBACK_REQUESTED",
        "ROLLBACK_IN_PROGRESS",
        "STOP_REQUESTED",
    ):
        return None
    return dict(deployments[-1])


# --- Listening to the alarm topic ---------------------------------------------------------------
@contextmanager
def topic_listener(region: str, topic_arn: str) -> Iterator[str]:
    """An SQS queue subscribed to the topic for the duration of the block (an e-mail subscription
    delivers nothing until someone follows its confirmation link); yields the queue URL."""
    sqs, sns = boto3.client("sqs", region_name=region), boto3.client("sns", region_name=region)
    queue_url = sqs.create_queue(QueueName=f"smoke-listener-{int(time.time())}")["QueueUrl"]
    subscription = None
    try:
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        queue_arn = attributes["Attributes"]["QueueArn"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
                }
            ],
        }
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
        subscribed = sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        subscription = subscribed["SubscriptionArn"]
        yield queue_url
    finally:
        if subscription:
            sns.unsubscribe(SubscriptionArn=subscription)
        sqs.delete_queue(QueueUrl=queue_url)


def received_messages(region: str, queue_url: str) -> list[str]:
    """The notification texts waiting in the listener's queue (SNS envelopes unwrapped)."""
    sqs = boto3.client("sqs", region_name=region)
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=10)
    return [json.loads(message["Body"])["Message"] for message in messages.get("Messages", [])]


def metric_sum(
    region: str, namespace: str, metric: str, dimensions: Mapping[str, str], since: datetime
) -> float:
    """The metric's sum from `since` until now, in one-minute periods."""
    cloudwatch = boto3.client("cloudwatch", region_name=region)
    datapoints = cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName=metric,
        Dimensions=[{"Name": name, "Value": value} for name, value in dimensions.items()],
        StartTime=since - timedelta(minutes=1),
        EndTime=datetime.now(UTC) + timedelta(minutes=1),
        Period=60,
        Statistics=["Sum"],
    )["Datapoints"]
    return float(sum(point["Sum"] for point in datapoints))


# --- ECS Exec -----------------------------------------------------------------------------------
def missing_session_tools() -> str | None:
    for tool in ("aws", "session-manager-plugin", "script"):
        if shutil.which(tool) is None:
            return f"an ECS Exec session needs `{tool}` on PATH"
    return None


def run_session(execute_command_line: str, timeout_seconds: float) -> str:
    """Runs the printed `aws ecs execute-command ... --interactive` line under a pseudo-terminal
    (the Session Manager plugin refuses to start without one); returns what the session printed."""
    try:
        result = subprocess.run(
            ["script", "--quiet", "--return", "--command", execute_command_line, "/dev/null"],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout_seconds,
            check=False,
        )
    except subprocess.TimeoutExpired as hung:
        printed = (hung.stdout or b"") + (hung.stderr or b"")
        return f"{printed.decode(errors='replace')}\n(no end within {timeout_seconds:.0f} s)"
    return (result.stdout + result.stderr).decode(errors="replace")


def shell_command(marker_parts: tuple[str, str]) -> str:
    """A command for the session that prints the marker only if it runs: printf joins the two halves
    in the container, so an echo of the command line does not count. It has no quotes or shell
    syntax, so it means the same however the session splits it into words."""
    first, second = marker_parts
    return f"printf %s%s {first} {second}"


# --- The registry password stored in state ------------------------------------------------------
def replace_secret_string(value: Any, old: str, new: str) -> tuple[Any, int]:
    """`value` (part of `pulumi stack export --show-secrets`) with every occurrence of the string
    `old`, plain or inside a secret, replaced by `new`; and how many there were."""
    if value == old:
        return new, 1
    if isinstance(value, list):
        replaced = [replace_secret_string(item, old, new) for item in value]
        return [item for item, _ in replaced], sum(count for _, count in replaced)
    if not isinstance(value, dict):
        return value, 0
    if value.get(SECRET_SIGNATURE) and "plaintext" in value:
        inner, count = replace_secret_string(json.loads(value["plaintext"]), old, new)
        return {**value, "plaintext": json.dumps(inner)}, count
    replaced_items = {key: replace_secret_string(item, old, new) for key, item in value.items()}
    return {key: item for key, (item, _) in replaced_items.items()}, sum(
        count for _, count in replaced_items.values()
    )


def plain(value: Any) -> Any:
    """A value of an exported deployment, its secret envelope removed."""
    if isinstance(value, dict) and value.get(SECRET_SIGNATURE) and "plaintext" in value:
        return json.loads(value["plaintext"])
    return value


def registry_accepts(server: str, username: str, password: str) -> bool:
    """Whether the registry answers its API root (`GET /v2/`) with these credentials."""
    host = urlsplit(f"https://{server}").netloc
    response = requests.get(f"https://{host}/v2/", auth=(username, password), timeout=30)
    return response.status_code == 200
