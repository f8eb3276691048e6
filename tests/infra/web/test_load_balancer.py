"""The public load balancer: health checks, timeouts, HTTP and HTTPS."""

import json

import pytest

from infra import app_contract
from testkit.program import ProgramRun, run_program
from tests.infra.conftest import CERTIFICATE_ARN
from tests.infra.services.ecs_api import container_definitions

LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
LISTENER = "aws:lb/listener:Listener"
# Policies Security Hub ELB.17 accepts are TLS 1.3 ones; the AWS default (TLS13-1-2-2021-06) also allows 1.2.
TLS13_POLICIES = {"ELBSecurityPolicy-TLS13-1-3-2021-06", "ELBSecurityPolicy-TLS13-1-2-Res-2021-06"}


@pytest.mark.parametrize(
    ("run_name", "protected"), [("dev_run", False), ("prod_run", True), ("ephemeral_run", False)]
)
def test_load_balancer_is_public_drops_invalid_headers_and_outlasts_gunicorn(
    run_name: str, protected: bool, request
) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    inputs = run.one(LOAD_BALANCER).inputs
    assert inputs["loadBalancerType"] == "application"
    assert inputs["internal"] is False
    assert inputs["dropInvalidHeaderFields"] is True
    assert inputs["ipAddressType"] == "dualstack"
    assert inputs["enableDeletionProtection"] is protected
    public = {subnet.id for subnet in run.of_type("aws:ec2/subnet:Subnet") if "public" in subnet.name}
    assert set(inputs["subnets"]) == public
    [web] = container_definitions(run.one("aws:ecs/taskDefinition:TaskDefinition", "web-"))
    gunicorn = {
        variable["name"]: int(variable["value"])
        for variable in web["environment"]
        if variable["name"].startswith("GUNICORN_")
    }
    assert (
        gunicorn[app_contract.GUNICORN_TIMEOUT]
        < inputs["idleTimeout"]
        < gunicorn[app_contract.GUNICORN_KEEPALIVE]
    )
    assert run.outputs["albDnsName"] == run.one(LOAD_BALANCER).state["dnsName"]


def test_target_group_checks_healthz_on_the_task_ip(dev_run: ProgramRun) -> None:
    inputs = dev_run.one(TARGET_GROUP).inputs
    assert inputs["targetType"] == "ip"
    assert inputs["port"] == app_contract.CONTAINER_PORT
    assert inputs["healthCheck"]["path"] == app_contract.LIVENESS_PATH
    assert inputs["healthCheck"]["matcher"] == "200", "a redirect is not healthy"


def test_without_a_certificate_http_forwards_to_the_app(dev_run: ProgramRun) -> None:
    [listener] = dev_run.of_type(LISTENER)
    assert (listener.inputs["port"], listener.inputs["protocol"]) == (80, "HTTP")
    assert listener.inputs["defaultActions"] == [
        {"type": "forward", "targetGroupArn": dev_run.one(TARGET_GROUP).state["arn"]}
    ]
    assert dev_run.outputs["webUrl"] == f"http://{dev_run.outputs['albDnsName']}"


def test_with_a_certificate_https_uses_tls13_and_http_redirects(custom_run: ProgramRun) -> None:
    https = custom_run.one(LISTENER, "https").inputs
    assert (https["port"], https["protocol"]) == (443, "HTTPS")
    assert https["certificateArn"] == CERTIFICATE_ARN
    assert https["sslPolicy"] in TLS13_POLICIES
    assert https["defaultActions"][0]["type"] == "forward"
    [http] = [listener.inputs for listener in custom_run.of_type(LISTENER) if listener.inputs["port"] == 80]
    assert http["defaultActions"] == [
        {"type": "redirect", "redirect": {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}}
    ]
    assert custom_run.outputs["webUrl"] == "https://app.example.com"


@pytest.mark.parametrize(
    ("run_name", "retention", "force_destroy"), [("prod_run", 365, False), ("custom_run", 7, True)]
)
def test_access_logs_go_to_a_private_encrypted_expiring_bucket(
    run_name: str, retention: int, force_destroy: bool, request
) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    bucket = run.one("aws:s3/bucket:Bucket", "access-logs")
    assert bucket.inputs["forceDestroy"] is force_destroy
    assert run.one(LOAD_BALANCER).inputs["accessLogs"] == {"bucket": bucket.id, "enabled": True}
    public_access = run.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "access-logs").inputs
    assert all(
        public_access[key] is True
        for key in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    [encryption] = run.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "access-logs",
    ).inputs["rules"]
    assert encryption["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
    rules = {
        rule["id"]: rule
        for rule in run.one(
            "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "access-logs"
        ).inputs["rules"]
    }
    lifecycle = rules["expire-access-logs"]
    assert (lifecycle["status"], lifecycle["expiration"]["days"]) == ("Enabled", retention)
    # Parts of unfinished multipart uploads are billed and never show as objects (S3 user guide).
    assert rules["abort-incomplete-uploads"]["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 7}
    policy = run.one("aws:s3/bucketPolicy:BucketPolicy", "access-logs")
    writers = [
        statement["Principal"]
        for statement in json.loads(policy.inputs["policy"])["Statement"]
        if statement["Action"] == "s3:PutObject"
    ]
    assert writers == [
        {"AWS": "arn:aws:iam::127311923021:root"},
        {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"},
    ]
    assert policy.urn in run.one(LOAD_BALANCER).dependencies, "the ALB checks its log bucket at creation"


def test_access_logs_are_off_by_default(dev_run: ProgramRun) -> None:
    assert "accessLogs" not in dev_run.one(LOAD_BALANCER).inputs
    assert [bucket.name for bucket in dev_run.of_type("aws:s3/bucket:Bucket")] == ["media-bucket"]


def test_a_leaving_task_drains_before_ecs_stops_it(prod_run: ProgramRun) -> None:
    """Scale-in and deploys: ECS sends SIGTERM only once the target has drained, so the drain lasts
    as long as a request may (gunicorn's timeout), and gunicorn then stops before ECS's SIGKILL."""
    [web] = container_definitions(prod_run.one("aws:ecs/taskDefinition:TaskDefinition", "web-"))
    gunicorn = {
        variable["name"]: int(variable["value"])
        for variable in web["environment"]
        if variable["name"].startswith("GUNICORN_")
    }
    for target_group in prod_run.of_type(TARGET_GROUP):  # both of a traffic-shifting deployment
        assert target_group.inputs["deregistrationDelay"] == gunicorn[app_contract.GUNICORN_TIMEOUT]
    assert gunicorn[app_contract.GUNICORN_GRACEFUL_TIMEOUT] < web["stopTimeout"]


def test_deregistration_delay_follows_the_request_timeout() -> None:
    run = run_program("pr-9", {"ephemeral": True, "gunicornTimeoutSeconds": 45, "albIdleTimeoutSeconds": 90})
    assert run.one(TARGET_GROUP).inputs["deregistrationDelay"] == 45


def test_gunicorn_trusts_forwarded_headers_only_from_the_load_balancers_subnets(dev_run: ProgramRun) -> None:
    """The load balancer's nodes take their private addresses in the subnets it is given (ALB user
    guide, "Subnets for your load balancer": one node per enabled Availability Zone, in that zone's
    subnet); those are the only peers whose X-Forwarded-Proto gunicorn may believe."""
    subnet_ids = set(dev_run.one(LOAD_BALANCER).inputs["subnets"])
    subnets = dev_run.of_type("aws:ec2/subnet:Subnet")
    cidrs = {subnet.inputs["cidrBlock"] for subnet in subnets if subnet.id in subnet_ids}
    [web] = container_definitions(dev_run.one("aws:ecs/taskDefinition:TaskDefinition", "web-"))
    environment = {variable["name"]: variable["value"] for variable in web["environment"]}
    assert set(environment[app_contract.FORWARDED_ALLOW_IPS].split(",")) == cidrs
