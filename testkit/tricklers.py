"""Clients that trickle their requests a byte at a time (slow-loris): a web process must keep
answering others while they hold their connections (core.buffering_worker)."""

from __future__ import annotations

import json
import socket
import threading

APP_HOST = "app.example.com"
TRICKLERS = 40


class Tricklers:
    """Clients that send one byte of their request every `interval` seconds, from one thread."""

    def __init__(self, port: int, requests: list[bytes], interval: float = 0.2) -> None:
        self.sockets = [socket.create_connection(("127.0.0.1", port)) for _ in requests]
        self.pending = [bytearray(request) for request in requests]
        self.interval = interval
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            for sock, rest in zip(self.sockets, self.pending, strict=True):
                if len(rest) > 1:  # never the last byte: the request stays incomplete
                    try:
                        sock.send(rest[:1])
                    except OSError:
                        continue
                    del rest[:1]

    def __enter__(self) -> Tricklers:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(5)
        for sock in self.sockets:
            sock.close()


def trickled_requests(count: int = TRICKLERS) -> list[bytes]:
    """Half trickle their headers, half send headers and trickle a body."""
    header = f"POST /api/signups HTTP/1.1\r\nHost: {APP_HOST}\r\nContent-Type: application/json\r\n"
    body = json.dumps({"email": "slow@example.com"}).encode()
    slow_headers = (header + "X-Padding: " + "p" * 200 + "\r\n\r\n").encode()
    slow_body = (header + f"Content-Length: {len(body) + 200}\r\n\r\n").encode()
    return [slow_headers] * (count // 2) + [slow_body + body + b" " * 200] * (count - count // 2)
