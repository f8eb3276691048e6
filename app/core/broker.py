"""Publishing a task with a bounded wait, whatever state the broker is in.

Celery's own producers share the workers' Redis options (10 s socket timeout, retry on timeout,
publish retries): right for a worker, but a request publishing to a Redis that accepts connections
and never answers (half-open during a failover) would wait about 40 s, and a few such requests tie
up every web thread, /healthz included. Here the publish uses its own pool of producers with short
timeouts (BROKER_PUBLISH_TRANSPORT_OPTIONS) and one quick retry. After a failure the pool is
dropped (its connections may be half-read), and the process stops trying for
BROKER_PUBLISH_COOL_DOWN_SECONDS: later requests answer at once, and the caller keeps the work
for the sweep.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import suppress

from celery import Task
from django.conf import settings
from kombu.pools import ProducerPool

logger = logging.getLogger(__name__)

# Producers (and connections) per process; more threads wait for a free one.
POOL_LIMIT = 10


class BoundedPublisher:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ProducerPool | None = None
        self._pool_pid: int | None = None
        self._unavailable_until = 0.0

    def producers(self, task: Task) -> ProducerPool:
        # One pool per process: a pool inherited through fork (Celery's prefork workers) would share
        # sockets with the parent.
        with self._lock:
            if self._pool is None or self._pool_pid != os.getpid():
                connection = task.app.connection_for_write(
                    transport_options=settings.BROKER_PUBLISH_TRANSPORT_OPTIONS
                )
                self._pool = ProducerPool(connection.Pool(limit=POOL_LIMIT), limit=POOL_LIMIT)
                self._pool_pid = os.getpid()
            return self._pool

    def publish(self, task: Task, args: tuple) -> bool:
        """Send `task` with `args`; False, in under 2 s, if the broker did not take it."""
        if time.monotonic() < self._unavailable_until:
            return False
        try:
            with self.producers(task).acquire(block=True, timeout=1) as producer:
                task.apply_async(
                    args, producer=producer, retry=True, retry_policy=settings.BROKER_PUBLISH_RETRY_POLICY
                )
        # Whatever kombu raises (connection errors, timeouts, a channel closed under a retry):
        # the broker did not take the message, and the caller keeps it for the sweep.
        except Exception as exc:
            self.cool_down(exc)
            return False
        return True

    def cool_down(self, exc: Exception) -> None:
        with self._lock:
            self._unavailable_until = time.monotonic() + settings.BROKER_PUBLISH_COOL_DOWN_SECONDS
            broken, self._pool = self._pool, None
        if broken is not None:
            with suppress(Exception):  # closing sockets of a broker that is gone may fail too
                broken.force_close_all()
                broken.connections.force_close_all()
        logger.warning(
            "broker unavailable (%s); not publishing for %s s",
            type(exc).__name__, settings.BROKER_PUBLISH_COOL_DOWN_SECONDS,
        )


publisher = BoundedPublisher()
