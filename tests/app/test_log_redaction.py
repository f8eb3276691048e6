"""Email redaction in every log line: complete, linear in the text, bounded per line, and never
bypassed by logging's own error report."""

from __future__ import annotations

import io
import json
import logging
import time

import pytest

from core.logging import (
    MAX_MESSAGE_CHARS,
    REDACTED,
    RedactedStreamHandler,
    RedactingJsonFormatter,
    redact_emails,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("to ada@example.com: 550", f"to {REDACTED}: 550"),
        ('{"to": "jerome.dupont+news@mail.example.co.uk"}', f'{{"to": "{REDACTED}"}}'),
        # JSON text escapes non-ASCII: the escapes are part of the address.
        (r'"j\u00e9r\u00f4me@caf\u00e9.example"', f'"{REDACTED}"'),
        ("a@b.cc,x@y.org", f"{REDACTED},{REDACTED}"),
        ("mailto:ada@example.com/x", f"mailto:{REDACTED}/x"),
        # Not addresses: an IP address after the @ (a masked URL), no local part, no dot.
        ("redis://**@10.0.0.1:6379", "redis://**@10.0.0.1:6379"),
        ("@example.com", "@example.com"),
        ("user@localhost", "user@localhost"),
    ],
)
def test_every_address_is_redacted_and_the_text_around_it_kept(text: str, expected: str) -> None:
    assert redact_emails(text) == expected


def test_a_local_part_longer_than_an_address_can_have_keeps_only_its_start() -> None:
    """RFC 5321 4.5.3.1: a local part has at most 64 octets; nothing past 128 characters is read."""
    assert redact_emails("x" * 300 + "@example.com") == "x" * 172 + REDACTED


def test_hostile_text_is_redacted_in_time_linear_in_its_length() -> None:
    """The previous pattern took ~0.5 s on 8 KB of `aaa@111` and never ended on 1 MB
    (bench/log_redaction.py prints the per-line cost); 1 MB of each shape now takes milliseconds."""
    half = 512 * 1024
    for hostile in ("a" * half + "@" + "1" * half, "a." * half, "a@b." * (half // 2)):
        start = time.process_time()
        redact_emails(hostile)
        assert time.process_time() - start < 2, hostile[:8]


def format_line(message: str, *args: object) -> dict:
    formatter = RedactingJsonFormatter("%(message)s")
    return json.loads(formatter.format(logging.LogRecord("t", logging.INFO, "", 0, message, args, None)))


def test_a_long_message_is_cut_to_the_bound_and_still_redacted() -> None:
    line = format_line("task args: %s", "ada@example.com " + "z" * (2 * MAX_MESSAGE_CHARS))
    assert line["message"].startswith(f"task args: {REDACTED} zzz")
    assert len(line["message"]) < MAX_MESSAGE_CHARS + 100
    assert line["message"].endswith("characters cut]")


def test_a_record_that_cannot_be_written_is_reported_without_its_content(capsys) -> None:
    handler = RedactedStreamHandler(io.StringIO())
    handler.setFormatter(RedactingJsonFormatter("%(message)s"))
    # Formatting fails: one argument for two placeholders.
    handler.handle(logging.LogRecord("signups", logging.WARNING, "", 0, "%s %s", ("ada@example.com",), None))
    report = capsys.readouterr().err
    assert "ada@example.com" not in report
    assert json.loads(report) == {
        "level": "ERROR",
        "logger": "core.logging",
        "message": "could not log a record of signups at WARNING: TypeError",
    }
