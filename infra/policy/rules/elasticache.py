"""ElastiCache: the Redis (or Valkey) broker (Security Hub ElastiCache controls, and what Celery needs)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from pulumi_policy import PolicyResource

from .shared import (
    CACHE_PARAMETER_GROUP,
    REPLICATION_GROUP,
    Props,
    Rule,
    as_list,
    is_present,
    parameter_required,
    resource_rule,
    stack_rule,
)


def _transit_encryption(redis: Props) -> Iterator[str]:
    if redis.get("transitEncryptionEnabled") is not True:
        yield "transitEncryptionEnabled must be true"


def _at_rest_encryption(redis: Props) -> Iterator[str]:
    if redis.get("atRestEncryptionEnabled") is not True:
        yield "atRestEncryptionEnabled must be true"


def _auth(redis: Props) -> Iterator[str]:
    if not is_present(redis, "authToken") and not as_list(redis.get("userGroupIds")):
        yield "set authToken (or RBAC userGroupIds) so clients must authenticate"


def _minor_upgrades(redis: Props) -> Iterator[str]:
    # AWS and the provider default to true (for Redis OSS 6+ and Valkey 7.2+), so only an explicit
    # false fails.
    if redis.get("autoMinorVersionUpgrade") is False:
        yield "autoMinorVersionUpgrade must not be false"


def _non_cluster(redis: Props) -> Iterator[str]:
    # Celery's Redis transport uses multi-key commands that Redis Cluster rejects.
    if redis.get("clusterMode") not in (None, "disabled"):
        yield f"clusterMode must be 'disabled', not {redis.get('clusterMode')!r}"
    if (redis.get("numNodeGroups") or 1) > 1:
        yield "numNodeGroups must be 1 (one shard, non-cluster mode)"


def _failover(redis: Props) -> Iterator[str]:
    if redis.get("automaticFailoverEnabled") is not True:
        yield "automaticFailoverEnabled must be true"
    if (redis.get("numCacheClusters") or 1) < 2:
        yield "numCacheClusters must be at least 2 (a replica to fail over to)"


def _noeviction(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    # An evicting broker silently drops queued tasks; the default parameter groups evict.
    yield from parameter_required(
        resources, REPLICATION_GROUP, CACHE_PARAMETER_GROUP, "maxmemory-policy", "noeviction",
        "an evicted key is a lost task",
    )


RULES: tuple[Rule, ...] = (
    resource_rule(
        "elasticache-transit-encryption",
        "Redis encrypts traffic in transit",
        ["ElastiCache.5"],
        [REPLICATION_GROUP],
        _transit_encryption,
    ),
    resource_rule(
        "elasticache-at-rest-encryption",
        "Redis encrypts data at rest",
        ["ElastiCache.4"],
        [REPLICATION_GROUP],
        _at_rest_encryption,
    ),
    resource_rule(
        "elasticache-auth", "Redis requires authentication", ["ElastiCache.6"], [REPLICATION_GROUP], _auth
    ),
    resource_rule(
        "elasticache-auto-minor-version-upgrade",
        "Redis applies minor engine upgrades automatically",
        ["ElastiCache.2"],
        [REPLICATION_GROUP],
        _minor_upgrades,
    ),
    resource_rule(
        "elasticache-non-cluster-mode",
        "Redis runs in non-cluster mode (the Celery transport needs it)",
        [],
        [REPLICATION_GROUP],
        _non_cluster,
    ),
    stack_rule(
        "elasticache-noeviction", "Redis never evicts keys (queued tasks would vanish)", [], _noeviction
    ),
    resource_rule(
        "elasticache-automatic-failover",
        "Redis has a replica and automatic failover",
        ["ElastiCache.3"],
        [REPLICATION_GROUP],
        _failover,
        relaxable=True,
    ),
)
