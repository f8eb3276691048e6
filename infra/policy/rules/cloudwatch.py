"""CloudWatch: the log groups (Security Hub CloudWatch controls)."""

from __future__ import annotations

from collections.abc import Iterator

from .shared import LOG_GROUP, Props, Rule, resource_rule


def _log_retention(log_group: Props) -> Iterator[str]:
    if (log_group.get("retentionInDays") or 0) <= 0:
        yield "retentionInDays must be set (logs would be kept, and billed, forever)"


RULES: tuple[Rule, ...] = (
    resource_rule(
        "log-group-retention", "Log groups expire their logs", ["CloudWatch.16"], [LOG_GROUP], _log_retention
    ),
)
