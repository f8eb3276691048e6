"""The app's own fence around the admin: only ADMIN_ALLOWED_CIDRS reach it, however the path is spelled.

The load balancer's listener rules match the path as the client sent it and take no `%`, so
`/%61dmin/` passes them; gunicorn decodes the path before Django routes it. This check runs on the
decoded path (decoded again until it no longer changes, lower-cased, repeated slashes as one), with
the client address the load balancer saw (core.client), with or without WAF in front.
"""

import ipaddress
import re
from collections.abc import Callable, Iterable
from urllib.parse import unquote

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound

from core.client import client_ip

ADMIN_PREFIX = "/admin"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def admin_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """ADMIN_ALLOWED_CIDRS as networks; a value that is no CIDR stops the process at start."""
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"ADMIN_ALLOWED_CIDRS holds {cidr!r}, which is not a network such as 203.0.113.0/24 "
                "or 2001:db8::/32 (comma-separated; 0.0.0.0/0,::/0 opens the admin to everyone)"
            ) from None
    return tuple(networks)


def normalized_path(path: str) -> str:
    for _ in range(5):  # each pass undoes one layer of percent-encoding
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
    return re.sub(r"/+", "/", path).lower()


def is_allowed(address: str, networks: tuple[Network, ...]) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == network.version and ip in network for network in networks)


class AdminFenceMiddleware:
    """404 for any request whose path starts with /admin from outside ADMIN_ALLOWED_CIDRS."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.networks: tuple[Network, ...] = settings.ADMIN_ALLOWED_NETWORKS

    def __call__(self, request: HttpRequest) -> HttpResponse:
        raw_path = request.META.get("RAW_URI", "").split("?", 1)[0]
        paths = (request.path_info, request.path, raw_path)
        fenced = any(normalized_path(path).startswith(ADMIN_PREFIX) for path in paths)
        if fenced and not is_allowed(client_ip(request), self.networks):
            # The load balancer's own answer to a fenced admin request, word for word.
            return HttpResponseNotFound("Not Found", content_type="text/plain")
        return self.get_response(request)
