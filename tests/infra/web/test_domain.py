"""Automatic HTTPS for a custom domain: a DNS-validated ACM certificate, A and AAAA alias records,
and HTTPS-only listeners; a certificate the user brings still works; prod refuses plain HTTP."""

import pytest

from infra import app_contract
from testkit.program import OWNER_CONFIG, ProgramRun, run_program
from tests.infra.conftest import CERTIFICATE_ARN
from tests.infra.services.ecs_api import container_definitions

CERTIFICATE = "aws:acm/certificate:Certificate"
VALIDATION = "aws:acm/certificateValidation:CertificateValidation"
RECORD = "aws:route53/record:Record"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
DOMAIN = str(OWNER_CONFIG["prod"]["domainName"])
ZONE = str(OWNER_CONFIG["prod"]["hostedZoneId"])
REDIRECT = [{"type": "redirect", "redirect": {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}}]


@pytest.fixture(scope="module")
def brought_certificate_run() -> ProgramRun:
    """A stack with its own certificate and a hosted zone: only the alias records are made."""
    return run_program(
        "pr-77",
        {"ephemeral": True, "domainName": DOMAIN, "hostedZoneId": ZONE, "certificateArn": CERTIFICATE_ARN},
    )


def listeners_by_port(run: ProgramRun) -> dict[int, dict]:
    return {int(listener.inputs["port"]): listener.inputs for listener in run.of_type(LISTENER)}


def test_prod_issues_a_certificate_for_its_domain_validated_through_dns(prod_run: ProgramRun) -> None:
    certificate = prod_run.one(CERTIFICATE)
    assert certificate.inputs == {"domainName": DOMAIN, "validationMethod": "DNS"}
    [option] = certificate.state["domainValidationOptions"]
    record = prod_run.one(RECORD, "certificate-validation")
    assert record.inputs["zoneId"] == ZONE
    assert (record.inputs["name"], record.inputs["type"], record.inputs["records"]) == (
        option["resourceRecordName"],
        option["resourceRecordType"],
        [option["resourceRecordValue"]],
    )
    assert record.inputs["allowOverwrite"] is True, "a replaced certificate names the same record"
    validation = prod_run.one(VALIDATION)
    assert validation.inputs["certificateArn"] == certificate.state["arn"]
    assert validation.inputs["validationRecordFqdns"] == [record.state["fqdn"]]


def test_https_waits_for_the_validated_certificate_and_http_only_redirects(prod_run: ProgramRun) -> None:
    listeners = listeners_by_port(prod_run)
    assert set(listeners) == {80, 443}
    assert listeners[80]["defaultActions"] == REDIRECT
    validation = prod_run.one(VALIDATION)
    assert listeners[443]["certificateArn"] == validation.state["certificateArn"]
    https = prod_run.one(LISTENER, "https")
    assert validation.urn in https.dependencies, "a listener cannot use a certificate ACM has not issued"
    assert prod_run.outputs["webUrl"] == f"https://{DOMAIN}"


@pytest.mark.parametrize("run_name", ["prod_run", "brought_certificate_run"])
def test_the_domain_gets_a_and_aaaa_alias_records_of_the_load_balancer(run_name: str, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    balancer = run.one(LOAD_BALANCER)
    aliases = {
        record.inputs["type"]: record.inputs
        for record in run.of_type(RECORD)
        if record.inputs["type"] in ("A", "AAAA")
    }
    assert set(aliases) == {"A", "AAAA"}, "IPv4 and IPv6: the load balancer is dual-stack"
    for record in aliases.values():
        assert (record["zoneId"], record["name"]) == (ZONE, DOMAIN)
        assert record["aliases"] == [
            {
                "name": balancer.state["dnsName"],
                "zoneId": balancer.state["zoneId"],
                "evaluateTargetHealth": True,
            }
        ]
    assert balancer.inputs["ipAddressType"] == "dualstack"


def test_a_certificate_the_user_brings_is_used_as_is(brought_certificate_run: ProgramRun) -> None:
    run = brought_certificate_run
    assert run.of_type(CERTIFICATE) == [] and run.of_type(VALIDATION) == []
    assert sorted(record.inputs["type"] for record in run.of_type(RECORD)) == ["A", "AAAA"]
    listeners = listeners_by_port(run)
    assert listeners[443]["certificateArn"] == CERTIFICATE_ARN
    assert listeners[80]["defaultActions"] == REDIRECT


def test_the_app_trusts_its_domain_and_redirects_to_https(prod_run: ProgramRun) -> None:
    [web] = container_definitions(prod_run.one("aws:ecs/taskDefinition:TaskDefinition", "web-"))
    environment = {variable["name"]: variable["value"] for variable in web["environment"]}
    assert environment[app_contract.DJANGO_ALLOWED_HOSTS].split(",")[0] == DOMAIN
    assert environment[app_contract.DJANGO_CSRF_TRUSTED_ORIGINS].split(",")[0] == f"https://{DOMAIN}"
    assert environment[app_contract.DJANGO_SECURE_SSL_REDIRECT] == "true"


@pytest.mark.parametrize("run_name", ["dev_run", "ephemeral_run"])
def test_dev_and_pull_request_stacks_may_stay_on_http(run_name: str, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    assert run.of_type(CERTIFICATE) == [] and run.of_type(RECORD) == []
    assert list(listeners_by_port(run)) == [80]
    assert run.outputs["webUrl"].startswith("http://")
