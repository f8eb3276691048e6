"""A private Docker engine: a `dockerd` of our own, with all its state in one temporary directory.

It shares nothing with a system Docker: its own socket, data root, exec root, pid file, an empty
config file and a cgroup parent of its own. It creates no bridge and changes no firewall rule, so
containers use `--network host`. `stop()` leaves nothing behind, even after a failure: it removes
every container, stops the daemon, kills what it started (containerd, shims, container processes),
unmounts what it left mounted under its root (its network namespace file, overlay mounts) and
deletes the directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

# overlay2 first; vfs (a full copy per layer, slow but works anywhere) where the kernel or the file
# system under the data root cannot do overlay (e.g. a data root that is itself on overlayfs).
STORAGE_DRIVERS = ("overlay2", "vfs")
START_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 30
CGROUP_ROOT = Path("/sys/fs/cgroup")
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class EngineError(RuntimeError):
    """The private engine could not start, or a docker command failed."""


def dockerd_binary() -> str | None:
    # Debian installs dockerd in /usr/sbin, which is not on every user's PATH.
    return shutil.which("dockerd") or shutil.which("dockerd", path="/usr/sbin:/usr/local/sbin")


def client_binary() -> str | None:
    """The docker client of the daemon's own package if there is one, else any on PATH.

    A newer client negotiates the daemon's older API version, but only a client of the same release
    is sure to have BuildKit built in (newer ones need the separate buildx plugin).
    """
    dockerd = dockerd_binary()
    if dockerd is not None:
        sbin = Path(dockerd).resolve().parent
        sibling = shutil.which("docker", path=f"{sbin}:{sbin.parent / 'bin'}")
        if sibling is not None:
            return sibling
    return shutil.which("docker")


class PrivateEngine:
    """One dockerd and the client commands that talk to it."""

    def __init__(self, root: Path, storage_driver: str) -> None:
        dockerd, client = dockerd_binary(), client_binary()
        if dockerd is None or client is None:
            raise EngineError("dockerd and a docker client are needed (Debian package docker.io)")
        self.root = root
        self.storage_driver = storage_driver
        self.dockerd = dockerd
        self.client = client
        self.cgroup_parent = f"/{root.name}"
        self.log_path = root / "dockerd.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """This process's environment pointed at the private engine, and nothing else of Docker's."""
        environment = {name: value for name, value in os.environ.items() if not name.startswith("DOCKER_")}
        environment.update(
            DOCKER_HOST=f"unix://{self.socket}",
            DOCKER_CONFIG=str(self.root / "client"),  # no credential helpers or contexts of the user
            DOCKER_BUILDKIT="1",  # builds skip unused stages (app/Dockerfile's official base)
        )
        environment.update(extra or {})
        return environment

    def command(self, *args: str) -> list[str]:
        return [self.client, *args]

    def run(
        self, *args: str, timeout: float = 120, check: bool = True, input_bytes: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        """A docker client command; raises EngineError with its output if it fails and `check`."""
        result = subprocess.run(
            self.command(*args),
            env=self.environment(),
            capture_output=True,
            timeout=timeout,
            input=input_bytes,
            check=False,
        )
        completed = subprocess.CompletedProcess(
            result.args,
            result.returncode,
            result.stdout.decode(errors="replace"),
            result.stderr.decode(errors="replace"),
        )
        if check and completed.returncode != 0:
            raise EngineError(
                f"docker {' '.join(args[:3])} … exited {completed.returncode}:\n"
                f"{completed.stdout[-3000:]}{completed.stderr[-3000:]}"
            )
        return completed

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no dockerd log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def start(self) -> None:
        for name in ("data", "exec", "client"):
            (self.root / name).mkdir()
        (self.root / "daemon.json").write_text("{}\n")
        command = [
            self.dockerd,
            f"--host=unix://{self.socket}",
            f"--data-root={self.root / 'data'}",
            f"--exec-root={self.root / 'exec'}",
            f"--pidfile={self.root / 'dockerd.pid'}",
            f"--config-file={self.root / 'daemon.json'}",
            f"--storage-driver={self.storage_driver}",
            f"--cgroup-parent={self.cgroup_parent}",
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--log-level=warn",
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=stop_when_parent_dies,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while self.run("version", check=False, timeout=10).returncode != 0:
            if self.process.poll() is not None:
                raise EngineError(f"dockerd exited with {self.process.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise EngineError(f"dockerd did not answer in {START_TIMEOUT_SECONDS} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop everything the engine started and delete its directory; safe to call twice."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(EngineError, subprocess.TimeoutExpired):
                containers = self.run("ps", "--all", "--quiet", timeout=30).stdout.split()
                if containers:
                    self.run("rm", "--force", *containers, timeout=60)
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        kill_processes(processes_mentioning(str(self.root)) + cgroup_processes(self.cgroup_parent))
        unmount_under(self.root)
        remove_cgroups(self.cgroup_parent)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def private_engine() -> Iterator[PrivateEngine]:
    """A started private engine, stopped and removed when the block ends, however it ends."""
    failures = []
    for driver in STORAGE_DRIVERS:
        engine = PrivateEngine(Path(tempfile.mkdtemp(prefix="dockerkit-")), driver)
        try:
            engine.start()
        except EngineError as error:
            failures.append(f"--storage-driver={driver}: {error}")
            engine.stop()
            continue
        try:
            yield engine
        finally:
            engine.stop()
        return
    raise EngineError("dockerd did not start:\n" + "\n".join(failures))


def stop_when_parent_dies() -> None:
    """In the daemon's child process: SIGTERM it (it then stops its containers) should the process
    that started it be killed before it could call stop()."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def processes_mentioning(text: str) -> list[int]:
    """Processes whose command line contains `text` (containerd and shims name the exec root)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if text.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def cgroup_directories(parent: str) -> list[Path]:
    """The cgroup directories under `parent` in every hierarchy (v1 and v2), deepest first."""
    tops = [CGROUP_ROOT / parent.lstrip("/")] + [
        hierarchy / parent.lstrip("/") for hierarchy in CGROUP_ROOT.glob("*") if hierarchy.is_dir()
    ]
    directories = [path for top in tops if top.is_dir() for path in (top, *top.rglob("*")) if path.is_dir()]
    return sorted(set(directories), key=lambda path: len(path.parts), reverse=True)


def cgroup_processes(parent: str) -> list[int]:
    """Every process in the engine's cgroups: container processes whose shim is gone."""
    pids: set[int] = set()
    for directory in cgroup_directories(parent):
        with contextlib.suppress(OSError):
            pids.update(int(pid) for pid in (directory / "cgroup.procs").read_text().split())
    return sorted(pids)


def kill_processes(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def remove_cgroups(parent: str) -> None:
    for directory in cgroup_directories(parent):
        with contextlib.suppress(OSError):
            directory.rmdir()


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root`, deepest first (/proc/self/mountinfo escapes spaces as \\040)."""
    mount_points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4].encode().decode("unicode_escape")
        if mount_point == str(root) or mount_point.startswith(f"{root}/"):
            mount_points.append(mount_point)
    return sorted(mount_points, key=len, reverse=True)


def unmount_under(root: Path) -> None:
    for mount_point in mounts_under(root):
        if subprocess.run(["umount", mount_point], capture_output=True, check=False).returncode != 0:
            # Still busy (a process we could not see holds it): detach it now, freed when released.
            subprocess.run(["umount", "--lazy", mount_point], capture_output=True, check=False)
