"""The side-effect boundary: a real SMTP server that records deliveries and can hold a recipient.

Built on the app tests' server (testkit/smtp.py). What it adds:
- every `RCPT TO` is recorded with its time: each one is an attempt of a welcome-email task, so the
  time between two attempts for one recipient is the time until the task was delivered again;
- `hold(recipient)` keeps the reply to that recipient's `RCPT TO` waiting until `unhold`, sending
  continuation lines ("250-...") every half second meanwhile, as a slow or tarpitting server does:
  the client keeps receiving data, so its SMTP timeout never fires, and the session reads nothing
  else the client sends (QUIT included) until then. The task is stuck in the middle of its work
  (attempt recorded, row lock taken, nothing delivered), which is the moment a scenario kills or
  stops the worker. A message is only delivered after its `DATA`, so a worker that dies while
  held has delivered nothing, as with a real mail server;
- `go_down()` / `come_back()` (from the app tests' server): connections are closed unanswered.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

from testkit.smtp import SMTPServer, SMTPSession

RCPT_PREFIX = b"RCPT TO:"


@dataclass(frozen=True)
class Attempt:
    recipient: str
    at: float  # time.monotonic()


class HoldingSMTPServer(SMTPServer):
    def __init__(self) -> None:
        super().__init__()
        self.RequestHandlerClass = HoldingSMTPSession
        self.attempts: list[Attempt] = []
        self._held: dict[str, threading.Event] = {}
        # Holds that catch one session only; their gate moves to _holding once a session waits on it.
        self._hold_once: set[str] = set()
        self._holding: dict[str, threading.Event] = {}

    def hold(self, recipient: str, *, first_session_only: bool = False) -> None:
        """Hold the recipient's RCPT TO until `unhold`; with `first_session_only`, later sessions
        (e.g. the redelivery of a killed task) pass at once."""
        with self.lock:
            self._held[recipient.lower()] = threading.Event()
            if first_session_only:
                self._hold_once.add(recipient.lower())

    def unhold(self, recipient: str) -> None:
        with self.lock:
            gate = self._held.pop(recipient.lower(), None) or self._holding.pop(recipient.lower(), None)
            self._hold_once.discard(recipient.lower())
        if gate is not None:
            gate.set()

    def unhold_all(self) -> None:
        for recipient in [*self._held, *self._holding]:
            self.unhold(recipient)

    def reset(self) -> None:
        self.unhold_all()
        with self.lock:
            self.messages.clear()
            self.attempts.clear()
            self.failures_left = 0
            self.rejected_recipients.clear()
            self.down = False
            self.refused_connections = 0

    def record_attempt(self, recipient: str) -> threading.Event | None:
        """Record an attempt; returns the gate to wait for if the recipient is held."""
        with self.lock:
            self.attempts.append(Attempt(recipient, time.monotonic()))
            if recipient in self._hold_once and recipient in self._held:
                self._hold_once.discard(recipient)
                self._holding[recipient] = self._held.pop(recipient)
                return self._holding[recipient]
            return self._held.get(recipient)

    def attempts_for(self, recipient: str) -> list[float]:
        with self.lock:
            return [attempt.at for attempt in self.attempts if attempt.recipient == recipient.lower()]

    def deliveries(self) -> Counter[str]:
        """How many messages each recipient received."""
        return Counter(recipient.lower() for recipient in self.recipients())

    def message_ids(self) -> dict[str, set[str]]:
        """The distinct Message-IDs each recipient received: more than one is a duplicate email."""
        received: dict[str, set[str]] = defaultdict(set)
        with self.lock:
            for message in self.messages:
                received[message["To"].lower()].add(message["Message-ID"])
        return received


class HoldingSMTPSession(SMTPSession):
    server: HoldingSMTPServer

    def setup(self) -> None:
        super().setup()
        self.rfile = _HoldingReader(self.rfile, self)

    def reply(self, line: str) -> None:
        # A client killed while held has nobody left to answer.
        with contextlib.suppress(OSError):
            super().reply(line)


class _HoldingReader:
    """Feeds the session its client's lines, holding back a held recipient's RCPT TO."""

    def __init__(self, lines, session: HoldingSMTPSession) -> None:
        self._lines = lines
        self._session = session
        self._server = session.server

    def __iter__(self) -> _HoldingReader:
        return self

    def __next__(self) -> bytes:
        line = next(self._lines)
        if line.upper().startswith(RCPT_PREFIX):
            recipient = line[len(RCPT_PREFIX):].strip().strip(b"<>").decode(errors="replace").lower()
            gate = self._server.record_attempt(recipient)
            if gate is not None:
                self._trickle_until(gate)
        return line

    def close(self) -> None:
        self._lines.close()

    def _trickle_until(self, gate: threading.Event) -> None:
        while not gate.wait(0.5):
            try:
                self._session.wfile.write(b"250-still checking\r\n")
                self._session.wfile.flush()
            except OSError:  # the client is gone (its process was killed)
                return
