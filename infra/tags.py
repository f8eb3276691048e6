"""Tags on every AWS resource of a stack (set once, as the provider's default tags)."""

from __future__ import annotations


def standard_tags(project: str, stack: str) -> dict[str, str]:
    return {"project": project, "stack": stack, "managed-by": "pulumi"}
