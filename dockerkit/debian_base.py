"""A Python base image made from the Debian archive, for machines that reach no container registry.

`debootstrap --variant=minbase` installs Debian bookworm with its Python 3.11 and venv into a
directory, the host's extra CA certificates are added (so pip trusts a TLS-intercepting proxy the
host trusts), caches and documentation are dropped, and `docker import` turns the directory into an
image. app/Dockerfile builds on it as it builds on the official python:3.11-slim-bookworm image.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from dockerkit.engine import PrivateEngine

SUITE = "bookworm"  # the Debian release of python:3.11-slim-bookworm
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
TAG = "dockerkit/debian-python:3.11-bookworm"
HOST_CA_DIRECTORY = Path("/usr/local/share/ca-certificates")
DEBOOTSTRAP_TIMEOUT_SECONDS = 600
# Not needed at run time; dropping them keeps the base near the official slim image's size.
DROPPED = (
    "var/cache/apt",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
)
# What the official image sets too: python3 from PATH, UTF-8 by default.
IMAGE_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
)


def make_debian_base(engine: PrivateEngine) -> str:
    """Create the base image in `engine` and return its tag."""
    work_dir = Path(tempfile.mkdtemp(prefix="dockerkit-rootfs-"))
    try:
        rootfs = work_dir / "rootfs"
        debootstrap(rootfs)
        trust_host_certificates(rootfs)
        for relative in DROPPED:
            empty_directory(rootfs / relative)
        archive = work_dir / "rootfs.tar"
        subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(archive), "."], check=True)
        changes = [argument for change in IMAGE_CHANGES for argument in ("--change", change)]
        engine.run("import", *changes, str(archive), TAG, timeout=300)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return TAG


def empty_directory(directory: Path) -> None:
    for entry in directory.glob("*"):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def debootstrap(rootfs: Path) -> None:
    command = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(PACKAGES)}",
        SUITE,
        str(rootfs),
        MIRROR,
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=DEBOOTSTRAP_TIMEOUT_SECONDS, check=False
    )
    if result.returncode != 0:
        log = rootfs / "debootstrap" / "debootstrap.log"
        details = log.read_text(errors="replace")[-3000:] if log.exists() else result.stdout[-3000:]
        raise RuntimeError(f"debootstrap failed ({result.returncode}): {result.stderr[-2000:]}\n{details}")


def trust_host_certificates(rootfs: Path) -> None:
    """Add the host's extra CAs (/usr/local/share/ca-certificates) to the image's bundle."""
    certificates = sorted(HOST_CA_DIRECTORY.glob("*.crt"))
    if not certificates:
        return
    target = rootfs / HOST_CA_DIRECTORY.relative_to("/")
    target.mkdir(parents=True, exist_ok=True)
    for certificate in certificates:
        shutil.copy2(certificate, target / certificate.name)
    subprocess.run(["chroot", str(rootfs), "update-ca-certificates"], capture_output=True, check=True)
