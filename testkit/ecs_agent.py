"""A local stand-in for the ECS agent's task scale-in protection endpoint, for any number of tasks.

ECS gives every container of a task `ECS_AGENT_URI`; the worker PUTs
`$ECS_AGENT_URI/task-protection/v1/state` with {"ProtectionEnabled": bool, "ExpiresInMinutes": n}
and gets {"protection": {...}} back, or {"failure": {...}} / {"error": {...}} (the answers the ECS
docs list). Here each task's URI is `http://127.0.0.1:<port>/<task>`; the server records every
request and keeps each task's protection with its expiry, as ECS would when choosing tasks to stop.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STATE_PATH = "/task-protection/v1/state"


@dataclass(frozen=True)
class ProtectionRequest:
    at: float  # time.monotonic()
    task: str
    enabled: bool
    expires_in_minutes: int | None


@dataclass
class Protection:
    enabled: bool = False
    until: float = 0.0  # time.monotonic()

    def active(self, now: float) -> bool:
        return self.enabled and now < self.until


class FakeEcsAgent:
    def __init__(self) -> None:
        self.requests: list[ProtectionRequest] = []
        self._protection: dict[str, Protection] = {}
        self._override: tuple[int, dict[str, Any]] | None = None
        self._lock = threading.Lock()
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                status, answer = agent.handle(self.path, json.loads(self.rfile.read(length) or b"{}"))
                self._send(status, answer)

            def do_GET(self) -> None:
                task = self.path.removesuffix(STATE_PATH).strip("/")
                self._send(200, {"protection": agent.describe(task)})

            def _send(self, status: int, answer: dict[str, Any]) -> None:
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeEcsAgent:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def uri(self, task: str) -> str:
        """The ECS_AGENT_URI of one task."""
        return f"http://127.0.0.1:{self.port}/{task}"

    # --- what the tests control and read -------------------------------------------------------
    def answer_with(self, status: int, answer: dict[str, Any]) -> None:
        """Answer every request this way from now on (an ECS failure or error), changing nothing."""
        self._override = (status, answer)

    def answer_normally(self) -> None:
        self._override = None

    def protected(self, task: str) -> bool:
        with self._lock:
            return self._protection.get(task, Protection()).active(time.monotonic())

    def requests_of(self, task: str) -> list[ProtectionRequest]:
        with self._lock:
            return [request for request in self.requests if request.task == task]

    def forget(self) -> None:
        with self._lock:
            self.requests.clear()
            self._protection.clear()

    # --- the endpoint ----------------------------------------------------------------------------
    def handle(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if not path.endswith(STATE_PATH):
            return 404, {"error": {"Code": "NotFound", "Message": path}}
        task = path.removesuffix(STATE_PATH).strip("/")
        enabled = body.get("ProtectionEnabled")
        if not isinstance(enabled, bool):
            return 400, {"error": {"Code": "InvalidParameterException", "Message": "ProtectionEnabled"}}
        minutes = body.get("ExpiresInMinutes", 120) if enabled else None
        now = time.monotonic()
        with self._lock:
            self.requests.append(ProtectionRequest(now, task, enabled, minutes))
            if self._override is not None:
                return self._override
            self._protection[task] = Protection(enabled, now + 60 * (minutes or 0))
        return 200, {"protection": self.describe(task)}

    def describe(self, task: str) -> dict[str, Any]:
        protection = self._protection.get(task, Protection())
        active = protection.active(time.monotonic())
        expires = datetime.now(UTC) + timedelta(seconds=protection.until - time.monotonic())
        return {
            "ExpirationDate": expires.strftime("%Y-%m-%dT%H:%M:%SZ") if active else None,
            "ProtectionEnabled": active,
            "TaskArn": f"arn:aws:ecs:us-east-1:123456789012:task/test/{task}",
        }
