"""`manage.py publish_queue_metrics`: the queue-metrics sidecar of the Beat task.

It runs outside the worker queues on purpose: a Celery task measuring the backlog would wait in
that backlog, and would never run while a pool has zero workers.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3
import redis
from botocore.config import Config
from django.conf import settings as django_settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import import_string

from queuemetrics import schema
from queuemetrics.publisher import BrokerLayout, PublishTarget, QueueMetricsPublisher, run

logger = logging.getLogger(__name__)

# Variable names of the app/infra contract (infra/app_contract.py; a test keeps them equal).
NAMESPACE_VARIABLE = "QUEUE_METRICS_NAMESPACE"
INTERVAL_VARIABLE = "QUEUE_METRICS_INTERVAL_SECONDS"
POOLS_VARIABLE = "QUEUE_METRICS_POOLS"
CLUSTER_VARIABLE = "ECS_CLUSTER"
REGION_VARIABLE = "AWS_REGION"
REDIS_URL_VARIABLE = "REDIS_URL"
_REQUIRED_VARIABLES = (
    NAMESPACE_VARIABLE,
    POOLS_VARIABLE,
    CLUSTER_VARIABLE,
    REGION_VARIABLE,
    REDIS_URL_VARIABLE,
)
_INTERVAL_RANGE_SECONDS = (1.0, 300.0)

# Every AWS and Redis call is bounded: a hung connection must not stall the loop.
_AWS_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=10)
_REDIS_TIMEOUT_SECONDS = 5
_REDIS_HEALTH_CHECK_SECONDS = 25


@dataclass(frozen=True)
class PublisherSettings:
    namespace: str
    interval_seconds: float
    pools: tuple[schema.PoolSpec, ...]
    cluster: str
    region: str
    redis_url: str

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> PublisherSettings:
        """Read and check every variable, reporting all problems at once."""
        problems = []
        missing = [name for name in _REQUIRED_VARIABLES if not environ.get(name)]
        if missing:
            problems.append("missing environment variable(s): " + ", ".join(missing))
        namespace = environ.get(NAMESPACE_VARIABLE, "")
        if namespace:
            try:
                schema.validate_namespace(namespace)
            except ValueError as error:
                problems.append(f"{NAMESPACE_VARIABLE}: {error}")
        pools: tuple[schema.PoolSpec, ...] = ()
        if environ.get(POOLS_VARIABLE):
            try:
                pools = schema.parse_pools(environ[POOLS_VARIABLE])
            except ValueError as error:
                problems.append(f"{POOLS_VARIABLE}: {error}")
        raw_interval = environ.get(INTERVAL_VARIABLE, str(schema.DEFAULT_INTERVAL_SECONDS))
        lowest, highest = _INTERVAL_RANGE_SECONDS
        try:
            interval = float(raw_interval)
        except ValueError:
            interval = -1.0
        if not lowest <= interval <= highest:
            problems.append(
                f"{INTERVAL_VARIABLE} must be a number of seconds from {lowest:g} to {highest:g}, "
                f"got {raw_interval!r}"
            )
        if problems:
            raise CommandError("cannot publish queue metrics: " + "; ".join(problems))
        return cls(
            namespace=namespace,
            interval_seconds=interval,
            pools=pools,
            cluster=environ[CLUSTER_VARIABLE],
            region=environ[REGION_VARIABLE],
            redis_url=environ[REDIS_URL_VARIABLE],
        )


class Command(BaseCommand):
    help = "Publish Celery queue lengths and ages to CloudWatch every interval, until SIGTERM."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--once", action="store_true", help="publish one interval's metrics and exit")

    def handle(self, *args: Any, once: bool = False, **options: Any) -> None:
        settings = PublisherSettings.from_environment(os.environ)
        # The broker layout (priority steps, key prefix) is the workers' own transport options.
        from config.celery import app as celery_app

        publisher = QueueMetricsPublisher(
            redis_client=redis.Redis.from_url(
                settings.redis_url,
                socket_connect_timeout=_REDIS_TIMEOUT_SECONDS,
                socket_timeout=_REDIS_TIMEOUT_SECONDS,
                health_check_interval=_REDIS_HEALTH_CHECK_SECONDS,
            ),
            cloudwatch=boto3.client("cloudwatch", region_name=settings.region, config=_AWS_CONFIG),
            ecs=boto3.client("ecs", region_name=settings.region, config=_AWS_CONFIG),
            target=PublishTarget(
                settings.namespace,
                settings.cluster,
                tuple(settings.pools),
                entries=tuple(django_settings.CELERY_BEAT_SCHEDULE),
            ),
            layout=BrokerLayout.from_transport_options(celery_app.conf.broker_transport_options or {}),
            gauge_readers=[import_string(path) for path in django_settings.QUEUE_METRICS_APP_READERS],
        )
        if once:
            self.stdout.write(publisher.publish_once().value)
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        # Logged, not printed: every line a long-running role prints is JSON.
        logger.info(
            "publishing queue metrics to %s every %g s", settings.namespace, settings.interval_seconds
        )
        run(publisher, settings.interval_seconds, stop)
        logger.info("queue metrics publisher stopped")
