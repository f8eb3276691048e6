"""Network: two AZs, NAT per stack, and security groups that admit only the documented traffic."""

import ipaddress

import pytest

from infra.app_contract import CONTAINER_PORT
from infra.network.network import ipv6_subnet
from testkit.program import ProgramRun

SUBNET = "aws:ec2/subnet:Subnet"
NAT_GATEWAY = "aws:ec2/natGateway:NatGateway"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"


def ingress_by_group(run: ProgramRun) -> dict[str, set[tuple]]:
    """Security group role -> {(port, source)}, source a role name or a CIDR."""
    names = {group.id: group.name.removeprefix("network-") for group in run.of_type(SECURITY_GROUP)}
    rules: dict[str, set[tuple]] = {role: set() for role in names.values()}
    for rule in run.of_type(INGRESS):
        inputs = rule.inputs
        assert inputs["fromPort"] == inputs["toPort"], f"{rule.name} opens a port range"
        source = (
            names.get(inputs.get("referencedSecurityGroupId"))
            or inputs.get("cidrIpv4")
            or inputs.get("cidrIpv6")
        )
        rules[names[inputs["securityGroupId"]]].add((int(inputs["fromPort"]), source))
    return rules


@pytest.mark.parametrize("run_name", ["dev_run", "prod_run", "ephemeral_run"])
def test_subnets_span_two_availability_zones_and_never_assign_public_ips(run_name: str, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    subnets = run.of_type(SUBNET)
    public = [subnet for subnet in subnets if "public" in subnet.name]
    private = [subnet for subnet in subnets if "private" in subnet.name]
    assert len(public) == len(private) == 2
    assert {subnet.inputs["availabilityZone"] for subnet in public} == {"us-east-1a", "us-east-1b"}
    assert {subnet.inputs["availabilityZone"] for subnet in private} == {"us-east-1a", "us-east-1b"}
    assert not any(subnet.inputs.get("mapPublicIpOnLaunch") for subnet in subnets)


@pytest.mark.parametrize(
    ("run_name", "nat_gateways"), [("dev_run", 0), ("ephemeral_run", 0), ("custom_run", 1), ("prod_run", 2)]
)
def test_nat_gateways_follow_the_nat_mode(run_name: str, nat_gateways: int, request) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    assert len(run.of_type(NAT_GATEWAY)) == nat_gateways
    private_tables = [table for table in run.of_type(ROUTE_TABLE) if "private" in table.name]
    default_routes = [route for table in private_tables for route in table.inputs.get("routes", [])]
    assert len(default_routes) == (2 if nat_gateways else 0), "each private subnet routes out through a NAT"
    assert all(route.get("natGatewayId") for route in default_routes)


def test_without_nat_tasks_run_in_public_subnets_with_a_public_ip(dev_run: ProgramRun) -> None:
    public = {subnet.id for subnet in dev_run.of_type(SUBNET) if "public" in subnet.name}
    assert set(dev_run.outputs["serviceSubnetIds"]) == public
    assert dev_run.outputs["assignPublicIp"] is True
    for service in dev_run.of_type("aws:ecs/service:Service"):
        assert service.inputs["networkConfiguration"]["assignPublicIp"] is True
        assert set(service.inputs["networkConfiguration"]["subnets"]) == public


def test_with_nat_tasks_run_in_private_subnets_without_a_public_ip(prod_run: ProgramRun) -> None:
    private = {subnet.id for subnet in prod_run.of_type(SUBNET) if "private" in subnet.name}
    assert set(prod_run.outputs["serviceSubnetIds"]) == private
    assert prod_run.outputs["assignPublicIp"] is False
    for service in prod_run.of_type("aws:ecs/service:Service"):
        assert service.inputs["networkConfiguration"]["assignPublicIp"] is False
        assert set(service.inputs["networkConfiguration"]["subnets"]) == private


@pytest.mark.parametrize(("run_name", "ports"), [("dev_run", (80,)), ("prod_run", (80, 443))])
def test_only_the_load_balancer_is_open_to_the_internet(
    run_name: str, ports: tuple[int, ...], request
) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    assert ingress_by_group(run) == {
        "alb": {(port, source) for port in ports for source in ("0.0.0.0/0", "::/0")},
        "app": {(CONTAINER_PORT, "alb")},
        "database": {(5432, "app")},
        "redis": {(6379, "app")},
    }


def test_https_opens_443_on_the_load_balancer_only(custom_run: ProgramRun) -> None:
    rules = ingress_by_group(custom_run)
    assert rules["alb"] == {(80, "0.0.0.0/0"), (443, "0.0.0.0/0"), (80, "::/0"), (443, "::/0")}
    assert rules["app"] == {(CONTAINER_PORT, "alb")}


@pytest.mark.parametrize("run_name", ["dev_run", "prod_run", "ephemeral_run"])
def test_public_subnets_are_dual_stack_for_the_load_balancer(run_name: str, request) -> None:
    """A dual-stack ALB needs an IPv6 block in every subnet it uses; nothing else gets IPv6."""
    run: ProgramRun = request.getfixturevalue(run_name)
    vpc = run.one("aws:ec2/vpc:Vpc")
    assert vpc.inputs["assignGeneratedIpv6CidrBlock"] is True
    vpc_block = ipaddress.IPv6Network(vpc.state["ipv6CidrBlock"])
    public = [subnet for subnet in run.of_type(SUBNET) if "public" in subnet.name]
    blocks = [ipaddress.IPv6Network(subnet.inputs["ipv6CidrBlock"]) for subnet in public]
    assert all(block.prefixlen == 64 and block.subnet_of(vpc_block) for block in blocks)
    assert len(set(blocks)) == len(public), "each public subnet has its own /64"
    assert not any(subnet.inputs.get("assignIpv6AddressOnCreation") for subnet in run.of_type(SUBNET))
    private = [subnet for subnet in run.of_type(SUBNET) if "private" in subnet.name]
    assert not any(subnet.inputs.get("ipv6CidrBlock") for subnet in private)
    [public_routes] = [table for table in run.of_type(ROUTE_TABLE) if table.name == "network-public"]
    gateway = run.one("aws:ec2/internetGateway:InternetGateway").id
    assert {"ipv6CidrBlock": "::/0", "gatewayId": gateway} in public_routes.inputs["routes"]
    assert run.one("aws:lb/loadBalancer:LoadBalancer").inputs["ipAddressType"] == "dualstack"


def test_ipv6_subnets_are_consecutive_64s_of_the_vpc_block() -> None:
    assert ipv6_subnet("2600:1f18:4a3:6e00::/56", 0) == "2600:1f18:4a3:6e00::/64"
    assert ipv6_subnet("2600:1f18:4a3:6e00::/56", 1) == "2600:1f18:4a3:6e01::/64"
    assert ipv6_subnet("2600:1f18:4a3:6e00::/56", 255) == "2600:1f18:4a3:6eff::/64"
    with pytest.raises(ValueError, match="no /64 number 256"):
        ipv6_subnet("2600:1f18:4a3:6e00::/56", 256)


def test_every_service_uses_the_app_security_group(prod_run: ProgramRun) -> None:
    app_group = prod_run.outputs["appSecurityGroupId"]
    for service in prod_run.of_type("aws:ecs/service:Service"):
        assert service.inputs["networkConfiguration"]["securityGroups"] == [app_group]


def test_the_vpc_default_security_group_allows_nothing(dev_run: ProgramRun) -> None:
    default = dev_run.one("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert not default.inputs.get("ingress") and not default.inputs.get("egress")
