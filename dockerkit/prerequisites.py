"""Why the app image cannot be built and run on this machine, if it cannot."""

from __future__ import annotations

import os
import shutil

import requests

from dockerkit import debian_base, lock
from dockerkit.engine import client_binary, dockerd_binary

INSTALL_HINT = "apt-get install --no-install-recommends docker.io debootstrap (scripts/test does it as root)"


def debootstrap_binary() -> str | None:
    return shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin:/usr/local/sbin")


def reachable(url: str) -> bool:
    try:
        return requests.head(url, timeout=10, allow_redirects=True).status_code < 400
    except requests.RequestException:
        return False


def missing_prerequisites() -> list[str]:
    """Every reason the image cannot be made here; empty when it can."""
    if os.geteuid() != 0:
        return ["not running as root: a private dockerd and debootstrap need root"]
    reasons = []
    if dockerd_binary() is None or client_binary() is None:
        reasons.append(f"no dockerd or docker client: {INSTALL_HINT}")
    if debootstrap_binary() is None:
        reasons.append(f"no debootstrap: {INSTALL_HINT}")
    release = f"{debian_base.MIRROR}/dists/{debian_base.SUITE}/InRelease"
    if not reachable(release):
        reasons.append(f"the Debian archive does not answer ({release}), so no base image can be made")
    if not reachable(f"{lock.INDEX_URL}/pip/"):
        reasons.append(f"PyPI does not answer ({lock.INDEX_URL}): the image's packages cannot be installed")
    return reasons
