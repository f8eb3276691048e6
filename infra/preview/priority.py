"""The listener rule priority of a preview: one function, so the base, the preview and the janitor
agree, and two previews never ask for the same priority.

Elastic Load Balancing takes a rule priority from 1 to 50000 (botocore elbv2 service model, shape
`RulePriority`: min 1, max 50000) and refuses a second rule with a priority already used on the
listener (PriorityInUse). Preview N gets `PREVIEW_RULE_PRIORITY_BASE + N`: distinct pull request
numbers give distinct priorities, and the priorities below the base stay free for rules the base
itself may own one day.
"""

from __future__ import annotations

import re

MIN_RULE_PRIORITY = 1
MAX_RULE_PRIORITY = 50_000
PREVIEW_RULE_PRIORITY_BASE = 100
MAX_PREVIEW_NUMBER = MAX_RULE_PRIORITY - PREVIEW_RULE_PRIORITY_BASE
PREVIEW_STACK = re.compile(r"pr-([1-9][0-9]*)")


def rule_priority(number: int) -> int:
    """The priority of preview `number`'s host-header rule; ValueError for a number no rule can have."""
    if not 1 <= number <= MAX_PREVIEW_NUMBER:
        raise ValueError(
            f"pull request number {number} has no listener rule priority: previews are numbered 1 to "
            f"{MAX_PREVIEW_NUMBER} (priority {PREVIEW_RULE_PRIORITY_BASE} + N must stay within the "
            f"load balancer's {MIN_RULE_PRIORITY} to {MAX_RULE_PRIORITY})"
        )
    return PREVIEW_RULE_PRIORITY_BASE + number


def preview_number(stack: str) -> int | None:
    """N of a pull request stack `pr-N`; None for any other stack name."""
    match = PREVIEW_STACK.fullmatch(stack)
    return int(match.group(1)) if match else None
