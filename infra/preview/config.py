"""Pull request previews: which of the three kinds a stack is, and the settings of each.

- A full stack (neither key set): everything of its own, as before; `pr-N` stacks that change the
  infrastructure itself still deploy this way.
- A preview base (`previewBase: true`): the network, cluster, load balancer, wildcard certificate
  and DNS, database server, broker, image repository and alarm topic that previews share.
- A thin preview (`previewOf: <org>/<project>/<base stack>`, only in an ephemeral `pr-N` stack): its
  own database, role, broker key prefix, secrets, target group, listener rule and services on the
  base it names.

A base needs `previewDomain` (and its Route 53 zone): a preview's real HTTPS URL is
`https://pr-N.<previewDomain>` under the base's wildcard certificate. Without a domain there is no
such URL: ACM issues certificates only for names whose control it can validate, which the load
balancer's own `*.elb.amazonaws.com` name is not, and that name has no wildcard DNS for per-preview
host names; a path prefix or a header would not be the URL the app really serves.

Capacity: each preview takes one listener rule and one target group on the base's load balancer,
whose quotas are 100 rules (not counting default rules) and 100 target groups per Application
Load Balancer, neither adjustable for target groups
(https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-limits.html).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from infra.config.reader import ConfigReader
from infra.preview.priority import MAX_PREVIEW_NUMBER, preview_number
from infra.web.config import DOMAIN_NAME_PATTERN, HOSTED_ZONE_ID_PATTERN

# Elastic Load Balancing quotas per Application Load Balancer (see the module's notes).
RULES_PER_LOAD_BALANCER = 100
TARGET_GROUPS_PER_LOAD_BALANCER = 100
# A preview takes one rule and one target group (rolling web deployment, no second target group).
MAX_PREVIEW_CAPACITY = min(RULES_PER_LOAD_BALANCER, TARGET_GROUPS_PER_LOAD_BALANCER)
# PostgreSQL's CONNECTION LIMIT: concurrent connections of the role, -1 for none (CREATE ROLE); a
# preview's role always has one.
MAX_CONNECTION_LIMIT = 1000
# Worker processes in a thin preview's one task (infra/preview/app_service.py): one message at a
# time, on every queue.
PREVIEW_WORKER_CONCURRENCY = 1
# <org>/<project>/<stack>; the stack names the base's AWS resources, so it is a valid stack prefix.
PREVIEW_OF_PATTERN = r"|[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/[a-z][a-z0-9]*(?:-[a-z0-9]+)*"


class StackKind(StrEnum):
    FULL = "full"
    BASE = "base"
    PREVIEW = "preview"


@dataclass(frozen=True)
class PreviewConfig:
    base: bool  # this stack is a preview base
    domain: str  # the base's preview domain: previews are https://pr-N.<domain>
    hosted_zone_id: str  # the Route 53 zone of `domain`
    of: str  # the base a thin preview runs on, <org>/<project>/<stack>
    capacity: int  # most previews a base holds
    connection_limit: int  # CONNECTION LIMIT of each preview's database role
    number: int | None  # N of a `pr-N` stack

    @property
    def kind(self) -> StackKind:
        if self.base:
            return StackKind.BASE
        return StackKind.PREVIEW if self.of else StackKind.FULL

    @property
    def base_stack(self) -> str | None:
        """The base's stack name (its cluster is `<project>-<base stack>`); None unless a thin preview."""
        return self.of.rsplit("/", 1)[-1] if self.kind is StackKind.PREVIEW else None

    @property
    def tenant_name(self) -> str:
        """The preview's database role and database (`pr_N`): PostgreSQL identifiers take no '-'."""
        return f"pr_{self.number}"

    @property
    def redis_key_prefix(self) -> str:
        """What the app puts before every Redis key: `pr-N:` in a thin preview, nothing elsewhere."""
        return f"pr-{self.number}:" if self.kind is StackKind.PREVIEW else ""

    @classmethod
    def read(cls, read: ConfigReader, stack: str | None, project: str) -> PreviewConfig:
        config = cls(
            base=read.boolean("previewBase"),
            domain=read.string(
                "previewDomain", DOMAIN_NAME_PATTERN, "empty, or a lower-case domain like preview.example.com"
            ),
            hosted_zone_id=read.string(
                "previewHostedZoneId", HOSTED_ZONE_ID_PATTERN, "empty, or a Route 53 hosted zone id (Z...)"
            ),
            of=read.string(
                "previewOf",
                PREVIEW_OF_PATTERN,
                "empty, or <org>/<project>/<stack>, e.g. acme/djcelery/preview-base",
            ),
            capacity=read.integer("previewCapacity", 1, MAX_PREVIEW_CAPACITY),
            connection_limit=read.integer("previewConnectionLimit", 1, MAX_CONNECTION_LIMIT),
            number=preview_number(stack) if stack else None,
        )
        config._check_kind(read, stack)
        if config.of and config.of.split("/")[1] != project:
            read.report(
                "previewOf",
                config.of,
                f"a base of this project, <org>/{project}/<stack> (its cluster is named after both)",
            )
        return config

    def _check_kind(self, read: ConfigReader, stack: str | None) -> None:
        if self.base and self.of:
            read.report(
                "previewOf", self.of, "empty when previewBase is true (a stack is a base or a preview)"
            )
        if self.base:
            for key, value in (("previewDomain", self.domain), ("previewHostedZoneId", self.hosted_zone_id)):
                if not value and read.valid(key):
                    read.report(key, value, f"required when previewBase is true ({NO_DOMAIN})")
        else:
            for key, value in (("previewDomain", self.domain), ("previewHostedZoneId", self.hosted_zone_id)):
                if value:
                    read.report(key, value, "empty unless previewBase is true (the base owns the domain)")
        if self.of and stack is not None and not (self.number and self.number <= MAX_PREVIEW_NUMBER):
            read.report(
                "previewOf",
                self.of,
                f"empty unless the stack is a pull request stack pr-<N>, N from 1 to {MAX_PREVIEW_NUMBER} "
                f"(this stack is {stack!r})",
            )


NO_DOMAIN = (
    "a preview's HTTPS URL is https://pr-N.<previewDomain> under a wildcard certificate; ACM "
    "issues none for the load balancer's own amazonaws.com name"
)
