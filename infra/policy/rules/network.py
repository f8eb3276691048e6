"""Network: who may open a connection to what, from the security groups' ingress (Security Hub EC2
controls).

Pulumi declares an ingress permission in three shapes (a `SecurityGroup`'s inline `ingress`, a
`SecurityGroupRule`, a `SecurityGroupIngressRule`); the rules read them as one `Ingress`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import PolicyResource

from .shared import (
    ECS_SERVICE,
    INGRESS_RULE,
    LOAD_BALANCER,
    RDS_INSTANCE,
    REPLICATION_GROUP,
    SECURITY_GROUP,
    SECURITY_GROUP_RULE,
    Props,
    Rule,
    as_list,
    of_type,
    stack_rule,
)

INTERNET = frozenset({"0.0.0.0/0", "::/0"})
WEB_PORTS = frozenset({80, 443})


@dataclass(frozen=True)
class Ingress:
    """One ingress permission, whichever of the three Pulumi shapes declared it."""

    urn: str
    group_id: Any
    cidrs: frozenset[str]
    source_groups: frozenset[str]
    other_sources: bool  # prefix lists or `self`
    ports: tuple[int, int]


def _port_range(rule: Props) -> tuple[int, int]:
    if str(rule.get("protocol", rule.get("ipProtocol"))) == "-1":
        return 0, 65535
    return int(rule.get("fromPort") or 0), int(rule.get("toPort") or 65535)


def _ingress_permissions(resources: Sequence[PolicyResource]) -> Iterator[Ingress]:
    for group in of_type(resources, SECURITY_GROUP):
        for rule in as_list(group.props.get("ingress")):
            yield Ingress(
                urn=group.urn,
                group_id=group.props.get("id"),
                cidrs=frozenset(as_list(rule.get("cidrBlocks")) + as_list(rule.get("ipv6CidrBlocks"))),
                source_groups=frozenset(as_list(rule.get("securityGroups"))),
                other_sources=bool(as_list(rule.get("prefixListIds")) or rule.get("self")),
                ports=_port_range(rule),
            )
    for rule_resource in of_type(resources, SECURITY_GROUP_RULE):
        rule = rule_resource.props
        if rule.get("type") == "ingress":
            yield Ingress(
                urn=rule_resource.urn,
                group_id=rule.get("securityGroupId"),
                cidrs=frozenset(as_list(rule.get("cidrBlocks")) + as_list(rule.get("ipv6CidrBlocks"))),
                source_groups=frozenset(as_list(rule.get("sourceSecurityGroupId"))),
                other_sources=bool(as_list(rule.get("prefixListIds")) or rule.get("self")),
                ports=_port_range(rule),
            )
    for rule_resource in of_type(resources, INGRESS_RULE):
        rule = rule_resource.props
        yield Ingress(
            urn=rule_resource.urn,
            group_id=rule.get("securityGroupId"),
            cidrs=frozenset(as_list(rule.get("cidrIpv4")) + as_list(rule.get("cidrIpv6"))),
            source_groups=frozenset(as_list(rule.get("referencedSecurityGroupId"))),
            other_sources=bool(rule.get("prefixListId")),
            ports=_port_range(rule),
        )


def _service_security_groups(resources: Sequence[PolicyResource]) -> set[str]:
    return {
        group
        for service in of_type(resources, ECS_SERVICE)
        for group in as_list((service.props.get("networkConfiguration") or {}).get("securityGroups"))
    }


def _app_security_groups(resources: Sequence[PolicyResource]) -> set[str]:
    """The services' groups; in a stack with no service (a preview base, whose previews run their
    services with its app group from their own stacks), the groups the load balancer alone reaches."""
    services = _service_security_groups(resources)
    if services:
        return services
    alb_groups = {
        group for lb in of_type(resources, LOAD_BALANCER) for group in as_list(lb.props.get("securityGroups"))
    }
    return {
        ingress.group_id
        for ingress in _ingress_permissions(resources)
        if ingress.source_groups and ingress.source_groups <= alb_groups
    }


def _data_stores_only_from_app(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    app_groups = _app_security_groups(resources)
    store_groups: dict[str, str] = {}
    for store in of_type(resources, RDS_INSTANCE, REPLICATION_GROUP):
        groups = as_list(store.props.get("vpcSecurityGroupIds")) + as_list(
            store.props.get("securityGroupIds")
        )
        if not groups:
            yield store.urn, "attach a dedicated security group (the VPC default group is not restricted)"
        store_groups.update({group: store.urn for group in groups})
    for ingress in _ingress_permissions(resources):
        if ingress.group_id not in store_groups:
            continue
        if ingress.cidrs or ingress.other_sources or not ingress.source_groups <= app_groups:
            yield (
                ingress.urn,
                (
                    f"ingress to the data store security group {ingress.group_id} may only come from the "
                    "application services' security groups"
                ),
            )


def _only_alb_open(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    alb_groups = {
        group for lb in of_type(resources, LOAD_BALANCER) for group in as_list(lb.props.get("securityGroups"))
    }
    for ingress in _ingress_permissions(resources):
        if not ingress.cidrs & INTERNET:
            continue
        low, high = ingress.ports
        if ingress.group_id not in alb_groups:
            yield (
                ingress.urn,
                f"only the load balancer's security group may accept traffic from {sorted(ingress.cidrs)}",
            )
        elif low != high or low not in WEB_PORTS:
            yield (
                ingress.urn,
                f"the load balancer may accept internet traffic on 80 and 443 only, not {low}-{high}",
            )


RULES: tuple[Rule, ...] = (
    stack_rule(
        "sg-data-stores-only-from-app",
        "PostgreSQL and Redis accept connections from the app only",
        [],
        _data_stores_only_from_app,
    ),
    stack_rule(
        "sg-only-alb-open-to-internet",
        "Only the ALB accepts internet traffic, on 80 and 443",
        ["EC2.18", "EC2.19"],
        _only_alb_open,
    ),
)
