"""The app image's dependency lock, app/requirements.lock, as the tests and benchmarks read it.

scripts/lock-app writes it with uv (`uv pip compile --universal --generate-hashes`): app/requirements.txt
resolved within constraints.txt (the exact versions the test suite runs with) against PyPI, every
package pinned with the sha256 of its distributions, and a marker on each package that only some
interpreters need (redis needs async-timeout below Python 3.11.3, e.g. Debian bookworm's 3.11.2).
app/Dockerfile installs it with `pip install --require-hashes --no-deps --only-binary=:all:`: two builds
of one commit install the same files. A test fails while the lock and its inputs disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO_ROOT / "app" / "requirements.txt"
CONSTRAINTS = REPO_ROOT / "constraints.txt"
LOCK = REPO_ROOT / "app" / "requirements.lock"
# The only index the lock and the image build use (scripts/lock-app passes it to uv).
INDEX_URL = "https://pypi.org/simple"


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    marker: str = ""  # installed only where this environment marker holds
    hashes: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return canonicalize_name(self.name)

    def applies_here(self) -> bool:
        return not self.marker or Marker(self.marker).evaluate()


def parse_pins(text: str) -> list[Pin]:
    """The `name==version [; marker]` requirements (and --hash options) of a requirements file."""
    pins = []
    for line in text.replace("\\\n", " ").splitlines():
        requirement_text, *hashes = line.split("#", 1)[0].split("--hash=sha256:")
        if not requirement_text.strip():
            continue
        requirement = Requirement(requirement_text)
        [version] = [spec.version for spec in requirement.specifier if spec.operator == "=="]
        marker = str(requirement.marker) if requirement.marker else ""
        pins.append(Pin(requirement.name, version, marker, tuple(digest.strip() for digest in hashes)))
    return pins


def app_requirements() -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in REQUIREMENTS.read_text().splitlines())
    return [Requirement(line) for line in lines if line]
