"""Failed admin sign-ins are counted in Redis, per client address and per user name, and lock out.

A client address (an IPv6 client's /64) with ADMIN_LOGIN_MAX_FAILURES_PER_CLIENT failures, or a user
name with ADMIN_LOGIN_MAX_FAILURES_PER_USER failures, within ADMIN_LOGIN_WINDOW_SECONDS gets 429 for
every further attempt until the window, which starts at the first failure, ends; a success clears
the user name's count. Without Redis there is nothing to count in, so sign-in attempts are refused
(503): the admin is closed for the outage rather than open to guessing.

A lockout per user name would let anyone lock a known user out. So a browser that signed in as a
user keeps a device cookie for that user name (signed with the secret key; OWASP, "Slow Down Online
Guessing Attacks with Device Cookies"): its attempts for that user name are counted per device
instead, and the user name's lockout does not apply to it. Guessing from elsewhere still locks the
user name for everyone without such a cookie.
"""

import hashlib
import ipaddress
import logging
from collections.abc import Callable

import redis
from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse

from core.app_redis import redis_client, redis_key
from core.client import client_ip

logger = logging.getLogger(__name__)

LOGIN_PATH = "/admin/login/"
KEY_PREFIX = "admin-login:failures"
DEVICE_COOKIE = "admin_device"
DEVICE_COOKIE_SALT = "core.login_throttle.device"
DEVICE_COOKIE_MAX_AGE_SECONDS = 180 * 24 * 3600


def client_key(request: HttpRequest) -> str:
    address = ipaddress.ip_address(client_ip(request))
    if address.version == 6:  # one subscriber holds a whole /64
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def posted_username(request: HttpRequest) -> str:
    return request.POST.get("username", "").strip().lower()


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def trusted_device(request: HttpRequest, username: str) -> str | None:
    """The device cookie's value when it is valid and names `username`, else None."""
    value = request.COOKIES.get(DEVICE_COOKIE, "")
    try:
        named = signing.loads(value, salt=DEVICE_COOKIE_SALT, max_age=DEVICE_COOKIE_MAX_AGE_SECONDS)
    except signing.BadSignature:
        return None
    return value if named == username else None


def failure_keys(request: HttpRequest) -> tuple[str, str]:
    """The client's counter, then the user name's, or this device's for a device of that user."""
    username = posted_username(request)
    device = trusted_device(request, username)
    second = f"device:{digest(device)}" if device else f"user:{digest(username)}"
    return redis_key(f"{KEY_PREFIX}:client:{client_key(request)}"), redis_key(f"{KEY_PREFIX}:{second}")


def remember_device(response: HttpResponse, username: str) -> None:
    response.set_cookie(
        DEVICE_COOKIE,
        signing.dumps(username, salt=DEVICE_COOKIE_SALT),
        max_age=DEVICE_COOKIE_MAX_AGE_SECONDS,
        path="/admin/",
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Strict",
    )


def refusal(status: int, message: str, retry_after: int) -> HttpResponse:
    response = HttpResponse(message, status=status, content_type="text/plain")
    response["Retry-After"] = str(max(retry_after, 1))
    return response


class AdminLoginThrottleMiddleware:
    """Counts failed POSTs to the admin's login form and refuses them past the limits."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST" or request.path_info != LOGIN_PATH:
            return self.get_response(request)
        keys = failure_keys(request)
        store = redis_client()
        try:
            locked = self.locked_for(store, keys)
        except redis.RedisError:
            logger.warning("admin sign-in refused: Redis is unavailable to count failures")
            return refusal(503, "Sign-in is unavailable for a moment; try again shortly.", 30)
        if locked:
            logger.warning("admin sign-in refused: too many failures for this client or user name")
            return refusal(429, "Too many failed sign-ins; try again later.", locked)
        response = self.get_response(request)
        succeeded = request.user.is_authenticated
        if succeeded:
            remember_device(response, posted_username(request))
        try:
            self.record(store, keys, succeeded=succeeded)
        except redis.RedisError:
            logger.warning("admin sign-in: the outcome could not be counted", exc_info=True)
        return response

    @staticmethod
    def locked_for(store: redis.Redis, keys: tuple[str, str]) -> int:
        """Seconds until the attempt may be made again (0: now)."""
        limits = (settings.ADMIN_LOGIN_MAX_FAILURES_PER_CLIENT, settings.ADMIN_LOGIN_MAX_FAILURES_PER_USER)
        pipe = store.pipeline(transaction=False)
        for key in keys:
            pipe.get(key)
            pipe.ttl(key)
        counts_and_ttls = pipe.execute()
        waits = [
            max(int(counts_and_ttls[2 * n + 1]), 1)
            for n, limit in enumerate(limits)
            if int(counts_and_ttls[2 * n] or 0) >= limit
        ]
        return max(waits, default=0)

    @staticmethod
    def record(store: redis.Redis, keys: tuple[str, str], succeeded: bool) -> None:
        if succeeded:
            # The user name's (or device's) count; the client's stays until its window ends.
            store.delete(keys[1])
            return
        pipe = store.pipeline(transaction=True)
        for key in keys:
            pipe.set(key, 0, ex=settings.ADMIN_LOGIN_WINDOW_SECONDS, nx=True)
            pipe.incr(key)
        pipe.execute()
