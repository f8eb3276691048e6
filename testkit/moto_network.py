"""A VPC with one subnet in each of two Availability Zones, in moto: what a load balancer, a DB
subnet group or a preview base's network needs before the test's own resources."""

from __future__ import annotations

from typing import Any


def vpc_with_two_subnets(ec2: Any, region: str) -> tuple[str, list[str]]:
    """The VPC's id and its subnets' ids (zones `<region>a` and `<region>b`)."""
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{index}.0/24", AvailabilityZone=f"{region}{zone}")[
            "Subnet"
        ]["SubnetId"]
        for index, zone in enumerate("ab")
    ]
    return vpc, subnets
