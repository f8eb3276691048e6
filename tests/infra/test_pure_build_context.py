"""The image tag: the same build inputs give the same tag, any change gives a new one."""

from pathlib import Path

import pytest

from infra.build_context import context_digest


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path]:
    context = tmp_path / "app"
    (context / "pkg").mkdir(parents=True)
    (context / "pkg" / "views.py").write_text("def index(): ...\n")
    dockerfile = context / "Dockerfile"
    dockerfile.write_text("FROM python:3.12-slim\n")
    return context, dockerfile


def test_same_inputs_same_tag_and_each_input_changes_it(project: tuple[Path, Path]) -> None:
    context, dockerfile = project
    tag = context_digest(context, dockerfile, "linux/amd64")
    assert tag == context_digest(context, dockerfile, "linux/amd64")
    assert len(tag) == 16
    assert context_digest(context, dockerfile, "linux/arm64") != tag
    (context / "pkg" / "views.py").write_text("def index(): return 1\n")
    changed_code = context_digest(context, dockerfile, "linux/amd64")
    assert changed_code != tag
    (context / "pkg" / "views.py").rename(context / "pkg" / "pages.py")
    assert context_digest(context, dockerfile, "linux/amd64") != changed_code, "a rename is a change"


def test_caches_do_not_change_the_tag(project: tuple[Path, Path]) -> None:
    context, dockerfile = project
    tag = context_digest(context, dockerfile, "linux/amd64")
    (context / "pkg" / "__pycache__").mkdir()
    (context / "pkg" / "__pycache__" / "views.cpython-311.pyc").write_bytes(b"\x00")
    assert context_digest(context, dockerfile, "linux/amd64") == tag


def test_missing_paths_are_named(tmp_path: Path, project: tuple[Path, Path]) -> None:
    context, dockerfile = project
    with pytest.raises(ValueError, match="is not a directory"):
        context_digest(tmp_path / "nowhere", dockerfile, "linux/amd64")
    with pytest.raises(ValueError, match="does not exist"):
        context_digest(context, tmp_path / "Dockerfile.missing", "linux/amd64")
