"""A content digest of the Docker build inputs, used as the image tag.

The ECR repository has immutable tags, so each distinct build needs its own tag, and the same inputs
must give the same tag so an unchanged app is not pushed again. The digest covers exactly what
Docker sends: every file of the context that `.dockerignore` does not exclude (same rules as Docker:
patterns relative to the context, `*` within one path segment, `**` across segments, `!` re-includes,
the last matching pattern wins), plus the Dockerfile and the platform. Leaving out a file Docker
sends would be worse than hashing too much: a changed image would reuse an existing tag and the push
would be refused.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

TAG_LENGTH = 16


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


def dockerignore_rules(context: Path) -> list[tuple[re.Pattern[str], bool]]:
    """(pattern, excludes) pairs from the context's .dockerignore, in file order."""
    ignore_file = context / ".dockerignore"
    if not ignore_file.is_file():
        return []
    rules = []
    for line in ignore_file.read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        excludes = not pattern.startswith("!")
        pattern = pattern.lstrip("!").strip().strip("/")
        rules.append((_pattern_regex(pattern), excludes))
    return rules


def is_excluded(relative: str, rules: list[tuple[re.Pattern[str], bool]]) -> bool:
    """Whether Docker leaves this context path out; excluding a directory excludes its contents."""
    segments = relative.split("/")
    candidates = ["/".join(segments[: length + 1]) for length in range(len(segments))]
    excluded = False
    for regex, excludes in rules:
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = excludes
    return excluded


def context_digest(context: Path, dockerfile: Path, platform: str) -> str:
    if not context.is_dir():
        raise ValueError(f"Docker build context {context} is not a directory")
    if not dockerfile.is_file():
        raise ValueError(f"Dockerfile {dockerfile} does not exist")
    rules = dockerignore_rules(context)
    digest = hashlib.sha256(f"platform={platform}\n".encode())
    digest.update(b"dockerfile\0" + dockerfile.read_bytes())
    for path in sorted(context.rglob("*")):
        relative = path.relative_to(context).as_posix()
        if path.is_file() and not is_excluded(relative, rules):
            digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:TAG_LENGTH]
