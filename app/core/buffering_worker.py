"""gunicorn's threaded worker with a buffering front: a request reaches a thread only once it has
arrived whole.

gthread hands every accepted connection to a thread, which then reads the headers and the body
with blocking reads. A client that sends a byte now and then holds that thread for as long as it
likes, so eight such clients take every thread of a task (2 workers x 4 threads) and /healthz
stops answering. Here the worker's event loop reads each request without blocking, as its bytes
arrive, and submits it to the thread pool when its headers and body (Content-Length, or a chunked
body up to its last chunk) are in; a trickling client costs a socket and a buffer, not a thread.

Limits: a request must arrive within REQUEST_READ_SECONDS (else 408 and the connection is closed);
past BUFFERED_BYTES_MAX (larger than any API body; only admin uploads are bigger) the rest of the
body is read by the thread, as before.
"""

import contextlib
import errno
import os
import selectors
import time
from functools import partial
from typing import Any

from gunicorn.workers.gthread import TConn, ThreadWorker


def read_timeout_seconds() -> float:
    """Seconds a client has to send one whole request (headers and body); below the ALB's idle
    timeout (60 s) and gunicorn's request timeout."""
    value = os.environ.get("GUNICORN_REQUEST_READ_TIMEOUT") or "20"
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0
    if seconds <= 0:
        raise SystemExit(f"GUNICORN_REQUEST_READ_TIMEOUT must be a positive number of seconds, got {value!r}")
    return seconds


REQUEST_READ_SECONDS = read_timeout_seconds()
# Bytes of a request held in memory per connection; a bigger body is read on by the thread.
BUFFERED_BYTES_MAX = 256 * 1024
READ_CHUNK_BYTES = 64 * 1024
HEADERS_END = b"\r\n\r\n"
LAST_CHUNK_LINE = b"0\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# The ALB's own limit on a request's headers (64 KB, Application Load Balancers, "HTTP header
# limits"); a longer header section is refused without reaching a thread.
HEADERS_MAX = 64 * 1024
CLOSING = b"\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
HEADERS_TOO_LARGE = b"HTTP/1.1 431 Request Header Fields Too Large" + CLOSING
TIMED_OUT = b"HTTP/1.1 408 Request Timeout" + CLOSING


class Arrival:
    """The bytes of one request read so far, and where its headers end once they have."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.headers_end = -1  # index of HEADERS_END, once it has arrived
        self.fields: dict[bytes, bytes] = {}

    def add(self, received: bytes) -> None:
        searched_from = max(len(self.data) - len(HEADERS_END) + 1, 0)
        self.data += received
        if self.headers_end < 0:
            # Only the new bytes are searched: a header sent a byte at a time stays linear.
            self.headers_end = self.data.find(HEADERS_END, searched_from)
            if self.headers_end >= 0:
                self.fields = header_fields(bytes(self.data[: self.headers_end]))

    @property
    def expects_continue(self) -> bool:
        return self.fields.get(b"expect", b"").lower() == b"100-continue"

    def is_whole(self) -> bool:
        """Whether the headers and the whole body have arrived."""
        if self.headers_end < 0:
            return False
        body_start = self.headers_end + len(HEADERS_END)
        if b"chunked" in self.fields.get(b"transfer-encoding", b"").lower():
            # The last chunk (size 0), then optional trailer fields, then an empty line. A chunk's
            # data may look like that too: the thread then reads the rest, as gthread always did.
            body = self.data[body_start:]
            has_last_chunk = body.startswith(LAST_CHUNK_LINE) or b"\r\n" + LAST_CHUNK_LINE in body
            return has_last_chunk and body.endswith(HEADERS_END)
        length = self.fields.get(b"content-length", b"0")
        # A malformed length is the parser's to refuse: the request is passed on as it is.
        return not length.isdigit() or len(self.data) - body_start >= int(length)


def header_fields(head: bytes) -> dict[bytes, bytes]:
    fields = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip()
    return fields


class BufferingThreadWorker(ThreadWorker):  # type: ignore[misc]
    """ThreadWorker whose event loop reads each request whole before a thread handles it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arriving: dict[TConn, Arrival] = {}

    def accept(self, listener: Any) -> None:
        try:
            client_sock, client_addr = listener.accept()
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        self.start_reading(TConn(self.cfg, client_sock, client_addr, listener.getsockname()))

    def on_client_socket_readable(self, conn: TConn, client: Any) -> None:
        """A kept-alive connection's next request is read whole too."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self.start_reading(conn)

    def start_reading(self, conn: TConn) -> None:
        conn.sock.setblocking(False)
        conn.timeout = time.monotonic() + REQUEST_READ_SECONDS
        self.arriving[conn] = Arrival()
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_request_bytes, conn))

    def on_request_bytes(self, conn: TConn, client: Any) -> None:
        arrival = self.arriving[conn]
        try:
            received = conn.sock.recv(READ_CHUNK_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            received = b""
        if not received:  # the client went away
            self.drop(conn)
            return
        had_headers = arrival.headers_end >= 0
        arrival.add(received)
        if arrival.headers_end < 0 and len(arrival.data) > HEADERS_MAX:
            self.send_quietly(conn, HEADERS_TOO_LARGE)
            self.drop(conn)
        elif arrival.is_whole() or len(arrival.data) >= BUFFERED_BYTES_MAX:
            self.hand_over(conn, bytes(arrival.data))
        elif not had_headers and arrival.headers_end >= 0 and arrival.expects_continue:
            # The client waits for this before it sends the body (the handler's own 100 Continue
            # may follow later; a client reads any number of 1xx answers, RFC 9110 15.2).
            self.send_quietly(conn, CONTINUE)

    def hand_over(self, conn: TConn, data: bytes) -> None:
        self.poller.unregister(conn.sock)
        del self.arriving[conn]
        conn.sock.setblocking(True)
        conn.init()
        # Bytes a kept-alive connection's parser read ahead come before the ones read here.
        conn.parser.unreader.unread(conn.parser.unreader.take_buffered() + data)
        conn.data_ready = True
        self.enqueue_req(conn)

    def murder_pending(self) -> None:
        """Also closes connections whose request did not arrive in time (called every loop)."""
        super().murder_pending()
        now = time.monotonic()
        for conn in [conn for conn in self.arriving if conn.timeout <= now]:
            self.send_quietly(conn, TIMED_OUT)
            self.drop(conn)

    def drop(self, conn: TConn) -> None:
        self.poller.unregister(conn.sock)
        del self.arriving[conn]
        self.nr_conns -= 1
        conn.close()

    @staticmethod
    def send_quietly(conn: TConn, data: bytes) -> None:
        # The client may be gone or not reading; the connection is closed either way.
        with contextlib.suppress(OSError):
            conn.sock.send(data)
