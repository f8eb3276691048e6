"""A custom domain on the load balancer: an ACM certificate validated through DNS, and the alias
records that point the domain at the load balancer.

ACM issues a public certificate once a CNAME record it names exists in the domain's zone. The
program writes that record into the Route 53 hosted zone and waits (`CertificateValidation`) until
ACM has issued the certificate, so the HTTPS listener never refers to one that is not valid yet;
ACM renews it by itself while the record stays. The A and AAAA alias records answer with the
dual-stack load balancer's addresses (alias queries to a load balancer are free). With a
certificate the user brings, only the alias records are made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from pulumi_aws.acm.outputs import CertificateDomainValidationOption

VALIDATION_RECORD_TTL_SECONDS = 300
ALIAS_RECORD_TYPES = ("A", "AAAA")  # IPv4 and IPv6: the load balancer is dual-stack


@dataclass(frozen=True)
class PublicDomainArgs:
    domain_name: str
    hosted_zone_id: str  # the Route 53 public hosted zone that holds domain_name
    issue_certificate: bool  # False: the user brings the certificate, only the records are made
    load_balancer_dns_name: pulumi.Input[str]
    load_balancer_zone_id: pulumi.Input[str]  # the load balancer's own hosted zone (for aliases)


class PublicDomain(pulumi.ComponentResource):
    # The issued certificate once ACM has validated it; None when the user brings one.
    certificate_arn: pulumi.Output[str] | None
    records: list[aws.route53.Record]  # the alias records

    def __init__(self, name: str, args: PublicDomainArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("djcelery:index:PublicDomain", name, None, opts)
        self._name, self._args = name, args
        self.certificate_arn = self._certificate() if args.issue_certificate else None
        self.records = [
            aws.route53.Record(
                f"{name}-{record_type.lower()}",
                zone_id=args.hosted_zone_id,
                name=args.domain_name,
                type=record_type,
                aliases=[
                    aws.route53.RecordAliasArgs(
                        name=args.load_balancer_dns_name,
                        zone_id=args.load_balancer_zone_id,
                        evaluate_target_health=True,
                    )
                ],
                opts=pulumi.ResourceOptions(parent=self),
            )
            for record_type in ALIAS_RECORD_TYPES
        ]
        self.register_outputs({"certificate_arn": self.certificate_arn})

    def _certificate(self) -> pulumi.Output[str]:
        name, args, child = self._name, self._args, pulumi.ResourceOptions(parent=self)
        certificate = aws.acm.Certificate(
            f"{name}-certificate",
            domain_name=args.domain_name,
            validation_method="DNS",
            opts=child,
        )
        options = certificate.domain_validation_options
        record = aws.route53.Record(
            f"{name}-certificate-validation",
            zone_id=args.hosted_zone_id,
            name=options.apply(lambda values: _validation(values, "resource_record_name")),
            type=options.apply(lambda values: _validation(values, "resource_record_type")),
            records=[options.apply(lambda values: _validation(values, "resource_record_value"))],
            ttl=VALIDATION_RECORD_TTL_SECONDS,
            # ACM names the same record for the same domain in one account: a replaced certificate,
            # or the record left by an earlier stack, is taken over instead of failing the update.
            allow_overwrite=True,
            opts=child,
        )
        validation = aws.acm.CertificateValidation(
            f"{name}-certificate",
            certificate_arn=certificate.arn,
            validation_record_fqdns=[record.fqdn],
            opts=child,
        )
        return validation.certificate_arn


def _validation(options: Sequence[CertificateDomainValidationOption], field: str) -> str:
    """A field of the one validation record ACM asks for (one domain, no alternative names)."""
    [option] = options
    value = getattr(option, field)
    if not value:
        raise ValueError(f"ACM gave no {field} to validate the certificate: {option}")
    return str(value)
