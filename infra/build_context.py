"""A content digest of the Docker build inputs, used as the image tag.

The ECR repository has immutable tags, so each distinct build needs its own tag; the same inputs
give the same tag, so an unchanged app is not pushed again. Files Docker never sends
(`.dockerignore`-style caches and virtualenvs) are skipped so they do not change the tag.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

SKIPPED_DIRECTORIES = frozenset(
    {".git", "__pycache__", ".venv", "node_modules", ".pytest_cache", "staticfiles"}
)
TAG_LENGTH = 16


def context_digest(context: Path, dockerfile: Path, platform: str) -> str:
    if not context.is_dir():
        raise ValueError(f"Docker build context {context} is not a directory")
    if not dockerfile.is_file():
        raise ValueError(f"Dockerfile {dockerfile} does not exist")
    digest = hashlib.sha256(f"platform={platform}\n".encode())
    digest.update(b"dockerfile\0" + dockerfile.read_bytes())
    for path in sorted(context.rglob("*")):
        relative = path.relative_to(context)
        if path.is_file() and not SKIPPED_DIRECTORIES.intersection(relative.parts):
            digest.update(relative.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:TAG_LENGTH]
