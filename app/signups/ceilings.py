"""Signup ceilings beyond the per-client limit: per IPv6 /48, and per web process.

The per-client limit counts an IPv6 client per /64, but one site's /48 holds 65,536 of those; the
/48 gets a ceiling of its own (SIGNUP_PREFIX_RATE_LIMIT, in the Redis cache like the per-client
limit). Both fail open while Redis cannot count (down, or refusing writes), so each web process
also holds a ceiling in its own memory that needs nothing else (SIGNUP_PROCESS_RATE_LIMIT per
minute): the whole service takes at most web tasks x GUNICORN_WORKERS x that many signups a minute.
"""

import ipaddress
import threading
import time

from django.conf import settings
from django.http import HttpRequest

from core.client import client_ip

PREFIX_LENGTH = 48


def prefix_rate(group: str, request: HttpRequest) -> str | None:
    """The /48 ceiling; None (no ceiling) for IPv4, whose clients are counted per address."""
    if ipaddress.ip_address(client_ip(request)).version == 4:
        return None
    return settings.SIGNUP_PREFIX_RATE_LIMIT


def client_prefix(group: str, request: HttpRequest) -> str:
    return str(ipaddress.ip_network(f"{client_ip(request)}/{PREFIX_LENGTH}", strict=False))


class TokenBucket:
    """`per_minute` takes a minute, refilled evenly; a burst of up to `per_minute` at once."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.tokens = float(per_minute)
        self.refill_per_second = per_minute / 60
        self.updated = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> float:
        """0 when a token was taken, else the seconds until one is there."""
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.refill_per_second)
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return 0.0
            return (1 - self.tokens) / self.refill_per_second


_process_bucket: TokenBucket | None = None
_bucket_lock = threading.Lock()


def process_ceiling_wait() -> float:
    """Seconds until this process takes another signup (0: now)."""
    global _process_bucket
    with _bucket_lock:
        if _process_bucket is None or _process_bucket.capacity != settings.SIGNUP_PROCESS_RATE_LIMIT:
            _process_bucket = TokenBucket(settings.SIGNUP_PROCESS_RATE_LIMIT)
    return _process_bucket.take()
