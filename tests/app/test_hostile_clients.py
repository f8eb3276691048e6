"""The web role as a real gunicorn process while clients trickle their headers or bodies.

gunicorn's gthread worker gave each connection a thread as soon as it was accepted; a few clients
sending a byte now and then held every thread and /healthz stopped answering (ECS then replaces a
healthy task). core.buffering_worker reads each request whole in the worker's event loop first.
Here one worker has 4 threads and 40 clients trickle.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import uuid
from collections.abc import Iterator

import pytest
import requests

from infra import app_contract
from testkit.processes import AppProcess, container_env, free_port, start_web, wait_for
from testkit.tricklers import APP_HOST, Tricklers, trickled_requests

HEADERS = {"Host": APP_HOST, "X-Forwarded-Proto": "https"}
READ_TIMEOUT_SECONDS = 4


@pytest.fixture(scope="module")
def web(test_database_url: str, redis_url: str) -> Iterator[tuple[AppProcess, int]]:
    read_timeout = {app_contract.GUNICORN_REQUEST_READ_TIMEOUT: str(READ_TIMEOUT_SECONDS)}
    env = container_env(test_database_url, redis_url, **read_timeout)
    port = free_port()
    process = start_web(env, port)
    yield process, port
    process.stop()


REQUESTS = trickled_requests()


def timed_get(port: int, path: str) -> tuple[int, float]:
    started = time.monotonic()
    response = requests.get(f"http://127.0.0.1:{port}{path}", headers=HEADERS, timeout=10)
    return response.status_code, time.monotonic() - started


@pytest.mark.django_db(transaction=True)
def test_health_checks_and_requests_are_answered_while_forty_clients_trickle(web) -> None:
    process, port = web
    with Tricklers(port, REQUESTS) as tricklers:
        # Every trickler has sent part of its request and got no thread.
        time.sleep(1)
        assert all(len(rest) < len(sent) for rest, sent in zip(tricklers.pending, REQUESTS, strict=True))
        for _ in range(5):
            status, seconds = timed_get(port, app_contract.LIVENESS_PATH)
            assert (status, seconds < 1) == (200, True), (status, seconds, process.describe())
        status, seconds = timed_get(port, f"/api/signups/{uuid.uuid4()}")
        assert (status, seconds < 2) == (404, True), (status, seconds, process.describe())


def test_a_request_that_does_not_arrive_in_time_gets_408_and_is_closed(web) -> None:
    _, port = web
    with Tricklers(port, REQUESTS[:1] + REQUESTS[-1:]) as tricklers:
        started = time.monotonic()
        for sock in tricklers.sockets:
            sock.settimeout(READ_TIMEOUT_SECONDS + 5)
            answer = sock.recv(1024)
            assert answer.startswith(b"HTTP/1.1 408 "), answer
            assert sock.recv(1024) == b"", "the connection is closed after the 408"
        assert time.monotonic() - started < READ_TIMEOUT_SECONDS + 3


def test_a_body_sent_in_pieces_within_the_deadline_is_handled_whole(web) -> None:
    _, port = web
    body = b'{"email": "not an address"}'
    head = (
        f"POST /api/signups HTTP/1.1\r\nHost: {APP_HOST}\r\nX-Forwarded-Proto: https\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        for piece in (body[:5], body[5:12], body[12:]):
            time.sleep(0.3)
            sock.sendall(piece)
        # http.client skips the 1xx answers (the handler's own 100 Continue) before the final one.
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        assert answer.status == 400
        assert json.loads(answer.read())["error"] == "invalid signup"


def test_a_hostile_user_agent_is_answered_at_once_and_logged_bounded(web) -> None:
    """8 KB of `aaa@111` in the User-Agent: the previous redaction spent ~0.5 s of CPU on it."""
    process, port = web
    agent = "a" * 4000 + "@" + "1" * 4000  # gunicorn refuses a header line over 8,190 bytes
    started = time.monotonic()
    response = requests.get(
        f"http://127.0.0.1:{port}{app_contract.LIVENESS_PATH}", headers={"User-Agent": agent}, timeout=10
    )
    assert response.status_code == 200 and time.monotonic() - started < 1

    def access_line() -> dict | None:
        for line in process.output().splitlines():
            if line.startswith("{") and "aaaa" in line:
                return json.loads(line)
        return None

    line = wait_for(access_line, timeout=5, message="no access log line for the request")
    assert line["logger"] == "gunicorn.access"
    assert len(line["message"]) < 1000 and "characters cut]" in line["message"]


def test_a_client_cannot_reroute_its_request_through_gunicorns_forwarder_headers(web) -> None:
    """gunicorn takes SCRIPT_NAME from a trusted peer's header and routes the rest of the path:
    `/x/admin/` with `SCRIPT_NAME: /x` reached Django as /admin/, past the load balancer's and the
    firewall's path rules. The ALB sets no such header (and drops names with `_` when
    dropInvalidHeaderFields is on), so gunicorn takes none."""
    _, port = web
    response = requests.get(
        f"http://127.0.0.1:{port}/x/readyz", headers={**HEADERS, "SCRIPT_NAME": "/x"}, timeout=10
    )
    assert response.status_code == 404, "routed as /readyz"


def test_a_chunked_body_sent_in_pieces_is_handed_on_at_its_last_chunk(web) -> None:
    _, port = web
    body = b'{"email": "not an address"}'
    chunks = [b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:9], body[9:])] + [b"0\r\n\r\n"]
    head = (
        f"POST /api/signups HTTP/1.1\r\nHost: {APP_HOST}\r\nX-Forwarded-Proto: https\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        for piece in chunks:
            time.sleep(0.2)
            sock.sendall(piece)
        started = time.monotonic()
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        # Answered by the view at once, not by the read deadline's 408. (Django reads no body
        # without a Content-Length, so the view sees an empty one.)
        assert answer.status == 400 and time.monotonic() - started < 1
        assert json.loads(answer.read())["error"].startswith("request body is not valid JSON")


def test_headers_longer_than_the_load_balancer_allows_get_431_without_a_thread(web) -> None:
    """64 KB: the ALB's limit on a request's whole header section (ALB quotas, "HTTP headers")."""
    _, port = web
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Filler: " + b"f" * 70_000)
        answer = sock.recv(1024)
    assert answer.startswith(b"HTTP/1.1 431 "), answer
