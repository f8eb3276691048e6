"""The image tag: a digest of the Docker build inputs, computed the way pulumi-docker computes its own.

The ECR repository has immutable tags, so each build the provider pushes needs a tag that no earlier
build used. pulumi-docker's `docker.Image` decides to rebuild and push when its `contextDigest`
changes (provider/provider.go `hashContext`, pulumi/pulumi-docker): a sha256 over, for the
Dockerfile (named "Dockerfile", mode 0) and then every file of the context that the ignore file
keeps, its slash-separated relative path, its Go `fs.FileMode` string and the sha256 of its content
(of its resolved target path for a symlink), each entry ended by a NUL byte. The tag is derived from
exactly that digest, plus the platform, so the provider never rebuilds without a new tag (a `chmod`
changes both) and never keeps a tag for a changed image. The ignore file is `<Dockerfile>.dockerignore`
when it exists, else the context's `.dockerignore`, with Docker's rules: patterns relative to the
context, `*` within one path segment, `**` across segments, `!` re-includes, the last match wins.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

TAG_LENGTH = 16
DOCKERFILE_ENTRY = "Dockerfile"
# Go's fs.FileMode.String() letters ("dalTLDpSugct?") that a Linux file can have, in Go's order.
_GO_MODE_LETTERS: tuple[tuple[Callable[[int], bool], str], ...] = (
    (stat.S_ISDIR, "d"),
    (stat.S_ISLNK, "L"),
    (lambda mode: stat.S_ISBLK(mode) or stat.S_ISCHR(mode), "D"),
    (stat.S_ISFIFO, "p"),
    (stat.S_ISSOCK, "S"),
    (lambda mode: bool(mode & stat.S_ISUID), "u"),
    (lambda mode: bool(mode & stat.S_ISGID), "g"),
    (stat.S_ISCHR, "c"),
    (lambda mode: bool(mode & stat.S_ISVTX), "t"),
)

IgnoreRules = list[tuple[re.Pattern[str], bool]]


def go_file_mode(mode: int) -> str:
    """What Go prints for a file mode: `-rw-r--r--`, `Lrwxrwxrwx`, `urwxr-xr-x` (setuid)."""
    letters = "".join(letter for test, letter in _GO_MODE_LETTERS if test(mode))
    permissions = "".join(
        symbol if mode & (1 << (8 - index)) else "-" for index, symbol in enumerate("rwxrwxrwx")
    )
    return (letters or "-") + permissions


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    parts, index = [], 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            parts.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            parts.append(".*")
            index += 2
        elif pattern[index] == "*":
            parts.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            parts.append("[^/]")
            index += 1
        else:
            parts.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(parts))


def ignore_file(context: Path, dockerfile: Path) -> Path | None:
    for candidate in (Path(f"{dockerfile}.dockerignore"), context / ".dockerignore"):
        if candidate.is_file():
            return candidate
    return None


def dockerignore_rules(context: Path, dockerfile: Path) -> IgnoreRules:
    """(pattern, excludes) pairs from the ignore file that applies, in file order."""
    path = ignore_file(context, dockerfile)
    rules: IgnoreRules = []
    for line in path.read_text().splitlines() if path else ():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        excludes = not pattern.startswith("!")
        pattern = pattern.lstrip("!").strip().strip("/")
        rules.append((_pattern_regex(pattern), excludes))
    return rules


def is_excluded(relative: str, rules: IgnoreRules) -> bool:
    """Whether Docker leaves this context path out; excluding a directory excludes its contents."""
    segments = relative.split("/")
    candidates = ["/".join(segments[: length + 1]) for length in range(len(segments))]
    excluded = False
    for regex, excludes in rules:
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = excludes
    return excluded


def _entry(path: Path, name: str, mode: int) -> bytes:
    if stat.S_ISLNK(mode):
        content = hashlib.sha256(os.path.realpath(path).encode()).digest()
    elif stat.S_ISREG(mode) or mode == 0:
        content = hashlib.sha256(path.read_bytes()).digest()
    else:
        content = hashlib.sha256().digest()
    return name.encode() + go_file_mode(mode).encode() + content + b"\0"


def context_files(context: Path, dockerfile: Path) -> list[str]:
    """The context's files Docker sends, relative and slash-separated, in the provider's walk order
    (each directory's entries by name, a directory's files where its name sorts, as Go's WalkDir)."""
    rules = dockerignore_rules(context, dockerfile)
    files: list[str] = []

    def walk(directory: Path, prefix: str) -> None:
        for entry in sorted(os.scandir(directory), key=lambda entry: entry.name):
            relative = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                walk(Path(entry.path), relative + "/")
            elif not is_excluded(relative, rules):
                files.append(relative)

    walk(context, "")
    return files


def provider_context_digest(context: Path, dockerfile: Path) -> str:
    """pulumi-docker's `contextDigest` of this build: what makes the provider rebuild."""
    if not context.is_dir():
        raise ValueError(f"Docker build context {context} is not a directory")
    if not dockerfile.is_file():
        raise ValueError(f"Dockerfile {dockerfile} does not exist")
    accumulated = _entry(dockerfile, DOCKERFILE_ENTRY, 0)
    for relative in context_files(context, dockerfile):
        path = context / relative
        accumulated += _entry(path, relative, path.lstat().st_mode)
    return hashlib.sha256(accumulated).hexdigest()


def context_digest(context: Path, dockerfile: Path, platform: str) -> str:
    """The image tag: the provider's context digest and the platform, shortened."""
    combined = f"{provider_context_digest(context, dockerfile)}\nplatform={platform}"
    return hashlib.sha256(combined.encode()).hexdigest()[:TAG_LENGTH]
