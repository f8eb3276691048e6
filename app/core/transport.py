"""kombu's Redis transport, except that a queue entry that is not a message does not end the worker,
a message over TASK_MAX_MESSAGE_BYTES is not run, and a channel closes its connections whatever
Redis answered last.

kombu pops an entry off a queue (BRPOP) and decodes it before anything can acknowledge or reject
it: an entry that is not JSON, or JSON that is not a kombu envelope, raises in the worker's event
loop and ends the worker, and the entry is gone. Here such an entry goes to the dead-letter list
(core.dead_letters) as it was, and the worker carries on. So does a message too large to run: its
arguments would be copied into each log line about it (a 1 MB one took minutes to log). Celery
selects this transport with CELERY_BROKER_TRANSPORT (config/settings/base.py); redis:// and
rediss:// URLs work as before.
"""

from __future__ import annotations

import json
import logging
from contextlib import suppress
from queue import Empty
from typing import Any

from django.conf import settings
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from redis.exceptions import OutOfMemoryError, ReadOnlyError, ResponseError

from core import dead_letters

logger = logging.getLogger(__name__)


def envelope(text: str) -> dict[str, Any] | None:
    """The kombu envelope in a queue entry; None when the entry is not one."""
    try:
        payload = json.loads(text)
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    properties = payload.get("properties")
    if not isinstance(properties, dict) or not {"delivery_tag", "delivery_info"} <= set(properties):
        return None
    return payload


def task_name(payload: dict[str, Any]) -> str:
    headers = payload.get("headers")
    return str(headers.get("task", "a message")) if isinstance(headers, dict) else "a message"


class QoS(kombu_redis.QoS):
    def restore_visible(self, *args: Any, **kwargs: Any) -> None:
        # Its mutex is a write: a Redis that refuses writes failed the consumer's start-up, which
        # left the new channel's connections open, again and again. The next sweep restores what
        # this one could not.
        try:
            super().restore_visible(*args, **kwargs)
        except (ReadOnlyError, OutOfMemoryError) as error:
            logger.warning("unacked messages not restored now: Redis refuses writes (%s)", error)


class Channel(kombu_redis.Channel):
    QoS = QoS

    def _brpop_read(self, **options: Any) -> bool:
        # kombu 5.7's own, with the entry checked before it is delivered.
        try:
            try:
                dest__item = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if not dest__item:
                raise Empty()
            dest, item = dest__item
            dest = bytes_to_str(dest).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)
            self.deliver_entry(dest, bytes_to_str(item))
            return True
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()

    def close(self) -> None:
        # kombu's close first finishes a BRPOP in flight, and an error that BRPOP answers (READONLY
        # or UNBLOCKED on a replica after a failover) escapes before the channel's connection pools
        # are closed: each restart of the worker's consumer while Redis refuses writes (several a
        # second) then left its connections open (10 grew to 185 in 15 s). The answer no longer
        # matters to a closing channel.
        if self._in_poll:
            with suppress(Empty, ResponseError):
                self._brpop_read()
        super().close()

    def deliver_entry(self, queue: str, text: str) -> None:
        payload = envelope(text)
        if payload is not None and len(text) <= settings.TASK_MAX_MESSAGE_BYTES:
            self.connection._deliver(payload, queue)
            return
        reason = (
            "not a message (not JSON, or not a kombu envelope)"
            if payload is None
            else f"{task_name(payload)}: larger than {settings.TASK_MAX_MESSAGE_BYTES} bytes"
        )
        letter = dead_letters.raw_entry(queue, text, reason)
        try:
            dead_letters.add(self.client, letter)
        except (*self.connection_errors, ResponseError) as error:
            # Redis refuses the write (OOM, READONLY): the entry, which nothing could run, is gone.
            logger.error("queue %s: dropped an entry that is not a message (%s)", queue, error)
            return
        logger.error(
            "queue %s: an entry of %s bytes moved to the dead letters as %s: %s",
            queue, len(text), letter.id, reason,
        )  # fmt: skip


class Transport(kombu_redis.Transport):
    Channel = Channel
