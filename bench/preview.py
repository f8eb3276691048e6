"""The preview base and a thin preview on it as the program declares them, for the timeline and
cost models: testkit/previews.py runs the real program under mocks, the base from
Pulumi.preview-base.yaml and pull request 42's preview reading the base's recorded outputs through
its StackReference (docs/delivery.md#previews).

Two bases: the example's, whose tasks run in private subnets behind one NAT gateway (the gateway's
hours are the base's cost, shared by every preview), and one without NAT, where each preview task
needs a public IPv4 address of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from testkit.previews import run_preview, run_preview_base
from testkit.program import ProgramRun


@dataclass(frozen=True)
class PreviewNetwork:
    name: str
    nat_mode: str  # the base's natMode


NETWORKS = (PreviewNetwork("base with a NAT gateway", "single"), PreviewNetwork("base without NAT", "none"))


def preview_base(network: PreviewNetwork = NETWORKS[0]) -> ProgramRun:
    """What a base creates once; previews only read it."""
    return run_preview_base(natMode=network.nat_mode)


def thin_preview(network: PreviewNetwork = NETWORKS[0]) -> ProgramRun:
    """A fresh `pr-N` on an existing base."""
    return run_preview(preview_base(network))
