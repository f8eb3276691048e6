"""VPC over two AZs, public and private subnets, optional NAT gateways, and the security groups.

Traffic allowed, and nothing else: the internet reaches the ALB (80, and 443 with a certificate,
over IPv4 and IPv6), the ALB reaches the app tasks on the container port, the app tasks reach
PostgreSQL (5432) and Redis (6379). With `natMode: none` the tasks run in the public subnets with a
public IP so they can pull the image and reach AWS APIs; their security group still admits only the
ALB. The VPC has an Amazon-provided IPv6 block and each public subnet a /64 of it, so the
load balancer is dual-stack (a custom domain gets an AAAA record besides its A record); tasks and
data stores stay IPv4-only in their subnets.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.app_contract import CONTAINER_PORT
from infra.network.config import NetworkConfig

AZ_COUNT = 2
VPC_CIDR = "10.0.0.0/16"
PUBLIC_SUBNET_CIDRS = ("10.0.0.0/20", "10.0.16.0/20")
PRIVATE_SUBNET_CIDRS = ("10.0.128.0/20", "10.0.144.0/20")
POSTGRES_PORT = 5432
REDIS_PORT = 6379
ANYWHERE = "0.0.0.0/0"
ANYWHERE_IPV6 = "::/0"
IPV6_SUBNET_PREFIX = 64  # the only size AWS accepts for a subnet's IPv6 block
NAT_GATEWAYS = {"none": 0, "single": 1, "per_az": AZ_COUNT}


@dataclass(frozen=True)
class NetworkArgs:
    config: NetworkConfig
    https: bool  # the load balancer also listens on 443


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    public_subnet_ids: list[pulumi.Output[str]]
    private_subnet_ids: list[pulumi.Output[str]]
    service_subnet_ids: list[pulumi.Output[str]]  # where the ECS tasks run
    assign_public_ip: bool
    alb_security_group_id: pulumi.Output[str]
    app_security_group_id: pulumi.Output[str]
    database_security_group_id: pulumi.Output[str]
    redis_security_group_id: pulumi.Output[str]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("djcelery:index:Network", name, None, opts)
        self._name = name
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=VPC_CIDR,
            assign_generated_ipv6_cidr_block=True,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={"Name": f"{name}-vpc"},
            opts=pulumi.ResourceOptions(parent=self),
        )
        # The VPC's default security group is attached to anything created without one: allow nothing.
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg", vpc_id=vpc.id, opts=pulumi.ResourceOptions(parent=self)
        )
        public_subnets, private_subnets = self._subnets(vpc, args.config)
        alb, app, database, redis = self._security_groups(vpc, args.https)

        use_public_subnets = args.config.nat_mode == "none"
        self.vpc_id = vpc.id
        self.public_subnet_ids = [subnet.id for subnet in public_subnets]
        self.private_subnet_ids = [subnet.id for subnet in private_subnets]
        self.service_subnet_ids = self.public_subnet_ids if use_public_subnets else self.private_subnet_ids
        self.assign_public_ip = use_public_subnets
        self.alb_security_group_id = alb.id
        self.app_security_group_id = app.id
        self.database_security_group_id = database.id
        self.redis_security_group_id = redis.id
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "service_subnet_ids": self.service_subnet_ids,
                "app_security_group_id": self.app_security_group_id,
            }
        )

    def _subnets(
        self, vpc: aws.ec2.Vpc, config: NetworkConfig
    ) -> tuple[list[aws.ec2.Subnet], list[aws.ec2.Subnet]]:
        """A public and a private subnet per AZ; public ones route through the internet gateway,
        private ones through the NAT gateways (if any)."""
        name, child = self._name, pulumi.ResourceOptions(parent=self)
        zones = aws.get_availability_zones_output(
            state="available", opts=pulumi.InvokeOutputOptions(parent=self)
        )
        internet_gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, opts=child)
        public_routes = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=vpc.id,
            routes=[
                aws.ec2.RouteTableRouteArgs(cidr_block=ANYWHERE, gateway_id=internet_gateway.id),
                aws.ec2.RouteTableRouteArgs(ipv6_cidr_block=ANYWHERE_IPV6, gateway_id=internet_gateway.id),
            ],
            opts=child,
        )
        public = [self._subnet("public", index, vpc, zones.names[index]) for index in range(AZ_COUNT)]
        private = [self._subnet("private", index, vpc, zones.names[index]) for index in range(AZ_COUNT)]
        nat_gateways = [
            self._nat_gateway(f"{name}-nat-{index}", public[index], internet_gateway)
            for index in range(NAT_GATEWAYS[config.nat_mode])
        ]
        for index, subnet in enumerate(public):
            self._associate(f"{name}-public-{index}", subnet, public_routes)
        for index, subnet in enumerate(private):
            routes = []
            if nat_gateways:
                nat = nat_gateways[index % len(nat_gateways)]
                routes.append(aws.ec2.RouteTableRouteArgs(cidr_block=ANYWHERE, nat_gateway_id=nat.id))
            private_routes = aws.ec2.RouteTable(
                f"{name}-private-{index}", vpc_id=vpc.id, routes=routes, opts=child
            )
            self._associate(f"{name}-private-{index}", subnet, private_routes)
        return public, private

    def _subnet(self, tier: str, index: int, vpc: aws.ec2.Vpc, zone: pulumi.Input[str]) -> aws.ec2.Subnet:
        public = tier == "public"
        return aws.ec2.Subnet(
            f"{self._name}-{tier}-{index}",
            vpc_id=vpc.id,
            cidr_block=(PUBLIC_SUBNET_CIDRS if public else PRIVATE_SUBNET_CIDRS)[index],
            # The dual-stack load balancer needs an IPv6 block in each of its subnets.
            ipv6_cidr_block=vpc.ipv6_cidr_block.apply(lambda block: ipv6_subnet(block, index))
            if public
            else None,
            availability_zone=zone,
            map_public_ip_on_launch=False,
            assign_ipv6_address_on_creation=False,
            tags={"Name": f"{self._name}-{tier}-{index}"},
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _associate(self, name: str, subnet: aws.ec2.Subnet, routes: aws.ec2.RouteTable) -> None:
        aws.ec2.RouteTableAssociation(
            name, subnet_id=subnet.id, route_table_id=routes.id, opts=pulumi.ResourceOptions(parent=self)
        )

    def _security_groups(self, vpc: aws.ec2.Vpc, https: bool) -> tuple[aws.ec2.SecurityGroup, ...]:
        """The four tiers and the only traffic between them: internet -> ALB -> app -> data stores."""
        name, child = self._name, pulumi.ResourceOptions(parent=self)
        alb = self._security_group(f"{name}-alb", vpc.id, "Load balancer: HTTP(S) from the internet")
        app = self._security_group(
            f"{name}-app", vpc.id, "App tasks: the container port from the load balancer"
        )
        database = self._security_group(f"{name}-database", vpc.id, "PostgreSQL: from the app tasks")
        redis = self._security_group(f"{name}-redis", vpc.id, "Redis: from the app tasks")
        for port in (80, 443) if https else (80,):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-alb-in-{port}",
                security_group_id=alb.id,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                cidr_ipv4=ANYWHERE,
                description=f"port {port} from the internet",
                opts=child,
            )
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-alb-in-{port}-ipv6",
                security_group_id=alb.id,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                cidr_ipv6=ANYWHERE_IPV6,
                description=f"port {port} from the internet over IPv6",
                opts=child,
            )
        self._allow(
            f"{name}-app-in-alb", app, alb, CONTAINER_PORT, "the container port from the load balancer"
        )
        self._allow(f"{name}-database-in-app", database, app, POSTGRES_PORT, "PostgreSQL from the app tasks")
        self._allow(f"{name}-redis-in-app", redis, app, REDIS_PORT, "Redis from the app tasks")
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-alb-out-app",
            security_group_id=alb.id,
            ip_protocol="tcp",
            from_port=CONTAINER_PORT,
            to_port=CONTAINER_PORT,
            referenced_security_group_id=app.id,
            description="the container port of the app tasks",
            opts=child,
        )
        # Tasks reach ECR, CloudWatch Logs, Secrets Manager and the data stores.
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-app-out",
            security_group_id=app.id,
            ip_protocol="-1",
            cidr_ipv4=ANYWHERE,
            description="AWS APIs, PostgreSQL and Redis",
            opts=child,
        )
        return alb, app, database, redis

    def _nat_gateway(
        self, name: str, subnet: aws.ec2.Subnet, internet_gateway: aws.ec2.InternetGateway
    ) -> aws.ec2.NatGateway:
        address = aws.ec2.Eip(name, domain="vpc", opts=pulumi.ResourceOptions(parent=self))
        return aws.ec2.NatGateway(
            name,
            allocation_id=address.id,
            subnet_id=subnet.id,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[internet_gateway]),
        )

    def _security_group(
        self, name: str, vpc_id: pulumi.Input[str], description: str
    ) -> aws.ec2.SecurityGroup:
        # Rules are separate resources; revoking them first lets groups that reference each other be deleted.
        return aws.ec2.SecurityGroup(
            name,
            vpc_id=vpc_id,
            description=description,
            revoke_rules_on_delete=True,
            tags={"Name": name},
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _allow(
        self,
        name: str,
        group: aws.ec2.SecurityGroup,
        source: aws.ec2.SecurityGroup,
        port: int,
        description: str,
    ) -> None:
        aws.vpc.SecurityGroupIngressRule(
            name,
            security_group_id=group.id,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            referenced_security_group_id=source.id,
            description=description,
            opts=pulumi.ResourceOptions(parent=self),
        )


def ipv6_subnet(vpc_block: str, index: int) -> str:
    """The `index`-th /64 of the VPC's IPv6 block (AWS assigns a /56: 256 of them)."""
    network = ipaddress.IPv6Network(vpc_block)
    if index >= 2 ** (IPV6_SUBNET_PREFIX - network.prefixlen):
        raise ValueError(f"{vpc_block} has no /{IPV6_SUBNET_PREFIX} number {index}")
    start = int(network.network_address) + (index << (128 - IPV6_SUBNET_PREFIX))
    return str(ipaddress.IPv6Network((start, IPV6_SUBNET_PREFIX)))
