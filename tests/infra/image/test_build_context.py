"""The image tag: the same build inputs give the same tag, any change gives a new one."""

from pathlib import Path

import pytest

from infra.image.build_context import context_digest


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


def test_files_docker_ignores_do_not_change_the_tag(project: tuple[Path, Path]) -> None:
    context, dockerfile = project
    (context / ".dockerignore").write_text("# caches\n**/__pycache__\nstaticfiles/\n*.log\n!keep.log\n")
    tag = context_digest(context, dockerfile, "linux/amd64")
    (context / "pkg" / "__pycache__").mkdir()
    (context / "pkg" / "__pycache__" / "views.cpython-311.pyc").write_bytes(b"\x00")
    (context / "staticfiles" / "css").mkdir(parents=True)
    (context / "staticfiles" / "css" / "site.css").write_text("body {}")
    (context / "debug.log").write_text("noise")
    assert context_digest(context, dockerfile, "linux/amd64") == tag


@pytest.mark.parametrize(
    "sent_by_docker",
    ["keep.log", "pkg/debug.log", "pkg/staticfiles.py"],
    ids=["re-included by !", "* stays within one directory", "a name that only starts like a pattern"],
)
def test_files_docker_sends_change_the_tag(project: tuple[Path, Path], sent_by_docker: str) -> None:
    context, dockerfile = project
    (context / ".dockerignore").write_text("**/__pycache__\nstaticfiles/\n*.log\n!keep.log\n")
    tag = context_digest(context, dockerfile, "linux/amd64")
    (context / sent_by_docker).write_text("sent to the builder")
    assert context_digest(context, dockerfile, "linux/amd64") != tag, f"{sent_by_docker} is part of the build"


def test_missing_paths_are_named(tmp_path: Path, project: tuple[Path, Path]) -> None:
    context, dockerfile = project
    with pytest.raises(ValueError, match="is not a directory"):
        context_digest(tmp_path / "nowhere", dockerfile, "linux/amd64")
    with pytest.raises(ValueError, match="does not exist"):
        context_digest(context, tmp_path / "Dockerfile.missing", "linux/amd64")
