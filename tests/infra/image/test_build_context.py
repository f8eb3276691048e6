"""The image tag: the same build inputs give the same tag, any change gives a new one."""

import shutil
from pathlib import Path

import pytest

from infra.image.build_context import context_digest, context_files, go_file_mode


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


def test_a_mode_change_changes_the_tag_as_it_makes_the_provider_rebuild(project: tuple[Path, Path]) -> None:
    """pulumi-docker hashes file modes: a chmod rebuilds and pushes, so it needs a new tag."""
    context, dockerfile = project
    tag = context_digest(context, dockerfile, "linux/amd64")
    (context / "pkg" / "views.py").chmod(0o755)
    assert context_digest(context, dockerfile, "linux/amd64") != tag


def test_the_tag_does_not_depend_on_where_the_checkout_is(tmp_path: Path, project: tuple[Path, Path]) -> None:
    context, dockerfile = project
    copy = tmp_path / "elsewhere" / "app"
    shutil.copytree(context, copy)
    assert context_digest(copy, copy / "Dockerfile", "linux/amd64") == context_digest(
        context, dockerfile, "linux/amd64"
    )


def test_a_dockerfile_specific_ignore_file_wins(project: tuple[Path, Path]) -> None:
    context, dockerfile = project
    (context / ".dockerignore").write_text("pkg\n")
    ignoring_pkg = context_digest(context, dockerfile, "linux/amd64")
    Path(f"{dockerfile}.dockerignore").write_text("nothing-matches\n")
    assert context_digest(context, dockerfile, "linux/amd64") != ignoring_pkg


def test_files_are_walked_in_the_providers_order(tmp_path: Path) -> None:
    """Go's WalkDir visits a directory's entries by name, descending into `a` before `a.txt`."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b").write_text("")
    (tmp_path / "a.txt").write_text("")
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    assert context_files(tmp_path, tmp_path / "Dockerfile") == ["Dockerfile", "a/b", "a.txt"]


@pytest.mark.parametrize(
    ("mode", "printed"),
    [
        (0o100644, "-rw-r--r--"),
        (0o100755, "-rwxr-xr-x"),
        (0o120777, "Lrwxrwxrwx"),
        (0o104755, "urwxr-xr-x"),
        (0, "----------"),
    ],
)
def test_modes_are_written_as_go_prints_them(mode: int, printed: str) -> None:
    assert go_file_mode(mode) == printed
