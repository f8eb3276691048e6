"""Who is calling: the client address as the load balancer saw it."""

import ipaddress

from django.http import HttpRequest

# What the rate limiter gets when no address can be read (a request over a Unix socket, say).
UNKNOWN_CLIENT = "0.0.0.0"  # noqa: S104 - a bucket name, not a bind address


def client_ip(request: HttpRequest) -> str:
    """The client's IP address, for the per-client rate limit.

    The ALB appends the address it received the connection from to X-Forwarded-For; every entry
    before that one came from the client and can be forged. Only the load balancer can reach the
    container port, so the last entry is the only one to trust. Without the header (a local run),
    the peer address is the client.
    """
    last_hop = request.META.get("HTTP_X_FORWARDED_FOR", "").rsplit(",", 1)[-1].strip()
    for candidate in (last_hop, without_port(last_hop), request.META.get("REMOTE_ADDR", "")):
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return UNKNOWN_CLIENT


def without_port(hop: str) -> str:
    """`1.2.3.4:5678` or `[2001:db8::1]:5678` without the port (the ALB adds one when its
    `routing.http.xff_client_port.enabled` attribute is on)."""
    host, _, port = hop.rpartition(":")
    return host.strip("[]") if port.isdigit() else hop
