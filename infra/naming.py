"""The physical names of a stack's resources, and the tags on all of them.

Cluster, services, task families, log groups and the database carry fixed names derived from the
project and the stack (`djcelery-dev-web`): the queue-metrics publisher and `python -m infra.ops`
address them by name, and the database's log groups must exist, under its name, before it does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi

from queuemetrics import schema

# What every AWS name involved accepts (RDS identifiers are the narrowest: letters, digits, '-').
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
MAX_PREFIX_LENGTH = 40  # leaves room for suffixes within RDS's 63 characters


@dataclass(frozen=True)
class StackNames:
    project: str
    stack: str
    # The stack whose ECS cluster the services run in: a thin preview's base; None: this stack's own.
    cluster_stack: str | None = None

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.prefix) or len(self.prefix) > MAX_PREFIX_LENGTH:
            raise ValueError(
                f"project and stack name {self.prefix!r} cannot name AWS resources: use at most "
                f"{MAX_PREFIX_LENGTH} characters of lower-case letters, digits and single '-' "
                "(e.g. `pulumi stack init pr-123`)"
            )

    @property
    def prefix(self) -> str:
        """e.g. djcelery-dev: the cluster's name, and the start of every other fixed name."""
        return f"{self.project}-{self.stack}"

    @property
    def cluster(self) -> str:
        """The ECS cluster's name (services, autoscaling targets and task ARNs are under it)."""
        return f"{self.project}-{self.cluster_stack or self.stack}"

    def service(self, name: str) -> str:
        """An ECS service's name, known before deployment (the publisher's config names them)."""
        return f"{self.prefix}-{name}"

    @property
    def database(self) -> str:
        """The RDS instance identifier, which also names the log groups RDS exports to."""
        return f"{self.prefix}-postgres"

    @property
    def metric_namespace(self) -> str:
        """Where the queue-metrics publisher writes (the app's schema decides the form)."""
        return schema.metric_namespace(self.project, self.stack)

    @property
    def tags(self) -> dict[str, str]:
        """Tags on every AWS resource of the stack (the provider's default tags)."""
        return {"project": self.project, "stack": self.stack, "managed-by": "pulumi"}


@dataclass(frozen=True)
class Cloud:
    """Where the stack is: known only once the AWS provider has answered."""

    region: pulumi.Output[str]
    account_id: pulumi.Output[str]


@dataclass(frozen=True)
class StackContext:
    """What every wiring of the program starts from: the stack's names, where it is, and the
    options of every resource (the stack's own AWS provider, which tags everything)."""

    names: StackNames
    cloud: Cloud
    opts: pulumi.ResourceOptions
