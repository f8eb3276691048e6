"""A small real SMTP server for tests: records messages, can refuse, reject, hold them or be down.

Django's SMTP backend talks to it over TCP exactly as it would to a mail provider, so the email
task's error handling is exercised against real protocol errors (smtplib.SMTPDataError), not
against a patched function.
"""

from __future__ import annotations

import contextlib
import select
import socketserver
import threading
from email import message_from_bytes
from email.message import Message


class SMTPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), SMTPSession)
        self.messages: list[Message] = []
        self.failures_left = 0
        # Recipients answered with a permanent rejection (550) at RCPT TO.
        self.rejected_recipients: set[str] = set()
        # While down, every connection is closed before the greeting, as by a server that is gone.
        self.down = False
        self.refused_connections = 0
        self.data_received = threading.Event()
        # Cleared: a message's final reply waits until the test sets it again.
        self.release = threading.Event()
        self.release.set()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def __enter__(self) -> SMTPServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()

    def fail_next(self, count: int) -> None:
        """Answer the next `count` messages with a temporary failure (451)."""
        with self.lock:
            self.failures_left = count

    def reject(self, recipient: str) -> None:
        """Refuse this recipient for good (550 5.1.1, quoting the address as real servers do)."""
        with self.lock:
            self.rejected_recipients.add(recipient.lower())

    def go_down(self) -> None:
        with self.lock:
            self.down = True

    def come_back(self) -> None:
        with self.lock:
            self.down = False

    def refuses_connection(self) -> bool:
        with self.lock:
            if self.down:
                self.refused_connections += 1
            return self.down

    def is_rejected(self, rcpt_command: str) -> bool:
        recipient = rcpt_command.partition(":")[2].strip().strip("<>").lower()
        with self.lock:
            return recipient in self.rejected_recipients

    def accept(self, raw_message: bytes) -> bool:
        with self.lock:
            if self.failures_left:
                self.failures_left -= 1
                return False
            self.messages.append(message_from_bytes(raw_message))
            return True

    def recipients(self) -> list[str]:
        with self.lock:
            return [message["To"] for message in self.messages]


class SMTPSession(socketserver.StreamRequestHandler):
    server: SMTPServer

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self) -> None:
        if self.server.refuses_connection():
            return  # closed without a greeting: the client sees the connection end
        # The client may go away mid-conversation, as a cancelled delivery does.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.converse()

    def converse(self) -> None:
        self.reply("220 fake-smtp ready")
        for raw_line in self.rfile:
            command = raw_line.decode(errors="replace").strip().upper()
            if command.startswith(("EHLO", "HELO")):
                self.reply("250 fake-smtp")
            elif command.startswith("RCPT TO") and self.server.is_rejected(raw_line.decode(errors="replace")):
                address = raw_line.decode(errors="replace").partition(":")[2].strip()
                self.reply(f"550 5.1.1 {address}: Recipient address rejected: User unknown")
            elif command.startswith(("MAIL FROM", "RCPT TO", "RSET", "NOOP")):
                self.reply("250 OK")
            elif command == "DATA":
                self.reply("354 end with <CRLF>.<CRLF>")
                self.receive_message()
            elif command == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not implemented")

    def receive_message(self) -> None:
        lines = []
        for raw_line in self.rfile:
            if raw_line == b".\r\n":
                break
            lines.append(raw_line[1:] if raw_line.startswith(b"..") else raw_line)
        self.server.data_received.set()
        # While held, keep the client's read alive with continuation lines, as a slow server does,
        # and stop holding if the client gives up (sends QUIT or closes the connection).
        while not self.server.release.wait(0.5):
            if select.select([self.connection], [], [], 0)[0]:
                self.reply("451 4.3.0 delivery abandoned by the client")
                return
            self.reply("250-still working")
        if self.server.accept(b"".join(lines)):
            self.reply("250 queued")
        else:
            self.reply("451 4.3.0 temporary failure, try again later")
