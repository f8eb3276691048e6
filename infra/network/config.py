"""Network settings of a stack."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from infra.config.reader import ConfigReader

NatMode = Literal["none", "single", "per_az"]
NAT_MODES: tuple[NatMode, ...] = ("none", "single", "per_az")


@dataclass(frozen=True)
class NetworkConfig:
    nat_mode: NatMode  # none: tasks in public subnets with a public IP; single or per_az NAT gateways

    @classmethod
    def read(cls, read: ConfigReader) -> NetworkConfig:
        return cls(nat_mode=read.choice("natMode", NAT_MODES))
