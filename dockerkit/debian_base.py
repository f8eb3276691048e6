"""A Python base image made from the Debian archive, for machines that reach no container registry.

`debootstrap --variant=minbase` installs Debian bookworm with its Python 3.11 and venv into a
directory, the host's extra CA certificates are added (so pip trusts a TLS-intercepting proxy the
host trusts), caches and documentation are dropped, and `docker import` turns the directory into an
image. app/Dockerfile builds on it as it builds on the official python:3.11-slim-bookworm image.

debootstrap takes about a minute, so the image tests keep the root file system's archive in a cache
directory for a week (the archive's updates still arrive) and import it again; the image benchmark
always builds it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
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


# Bumped when the way the root file system is made changes, so a cached archive is not reused.
ROOTFS_FORMAT = "1"
CACHE_MAX_AGE_SECONDS = 7 * 24 * 3600


def default_cache_directory() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dockerkit"


def make_debian_base(engine: PrivateEngine, cache_directory: Path | None = None) -> str:
    """Create the base image in `engine` and return its tag; with `cache_directory`, from the root
    file system archive kept there if it is fresh."""
    work_dir = Path(tempfile.mkdtemp(prefix="dockerkit-rootfs-"))
    try:
        archive = (cache_directory or work_dir) / archive_name()
        if not is_fresh(archive):
            make_root_archive(work_dir / "rootfs", archive)
        changes = [argument for change in IMAGE_CHANGES for argument in ("--change", change)]
        engine.run("import", *changes, str(archive), TAG, timeout=300)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return TAG


def archive_name() -> str:
    """Names what goes into the root file system: release, packages, dropped folders, host CAs."""
    key = hashlib.sha256()
    for part in (ROOTFS_FORMAT, SUITE, MIRROR, *PACKAGES, *DROPPED):
        key.update(part.encode() + b"\0")
    for certificate in sorted(HOST_CA_DIRECTORY.glob("*.crt")):
        key.update(certificate.read_bytes())
    return f"debian-python-{SUITE}-{key.hexdigest()[:16]}.tar"


def is_fresh(archive: Path) -> bool:
    return archive.exists() and time.time() - archive.stat().st_mtime < CACHE_MAX_AGE_SECONDS


def make_root_archive(rootfs: Path, archive: Path) -> None:
    debootstrap(rootfs)
    trust_host_certificates(rootfs)
    for relative in DROPPED:
        empty_directory(rootfs / relative)
    archive.parent.mkdir(parents=True, exist_ok=True)
    # Written aside and renamed: a run stopped half-way leaves no partial archive under the real name.
    partial = archive.with_name(f"{archive.name}.{os.getpid()}.partial")
    subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
    partial.replace(archive)


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
