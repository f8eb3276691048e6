"""The cached root file system of the Debian base (dockerkit/debian_base.py): reused for a week,
and never for a base made differently."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from dockerkit import debian_base


def test_an_archive_is_reused_for_a_week_then_made_again(tmp_path: Path) -> None:
    archive = tmp_path / debian_base.archive_name()
    assert not debian_base.is_fresh(archive), "a missing archive counts as fresh"
    archive.write_bytes(b"")
    assert debian_base.is_fresh(archive), "a new archive is not reused"
    eight_days_ago = time.time() - 8 * 24 * 3600
    os.utime(archive, (eight_days_ago, eight_days_ago))
    assert not debian_base.is_fresh(archive), "an archive older than a week is still reused"


def test_a_base_with_other_packages_does_not_reuse_the_archive(monkeypatch: pytest.MonkeyPatch) -> None:
    name = debian_base.archive_name()
    monkeypatch.setattr(debian_base, "PACKAGES", (*debian_base.PACKAGES, "curl"))
    assert debian_base.archive_name() != name, "the archive's name ignores the package list"
