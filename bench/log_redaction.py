"""Cost of one JSON log line with email redaction, for benign and hostile client-controlled text.

Each input goes through the formatter every role logs with (core.logging.RedactingJsonFormatter)
as the message of one record; the table shows the median CPU time per line over several runs. The
8 KB inputs are what a client can put in a User-Agent or path of one anonymous request; the 1 MB
one is a task argument. `previous pattern` is the unbounded expression redaction used before
(quadratic: it backtracks over local part x domain), on the 8 KB inputs only.

    .venv/bin/python -m bench.log_redaction
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench.report import REPO_ROOT, argument_parser, describe_machine, machine_facts, table, write_results

PREVIOUS_PATTERN = re.compile(r"[\w.!#$%&*+=?^~\\-]+@[\w\\-]+(?:\.[\w\\-]+)*\.[A-Za-z][\w\\-]*")
KIB = 1024
INPUTS: dict[str, str] = {
    "access line": '10.0.1.7 "GET /api/signups/1d2c HTTP/1.1" 202 58 3ms agent="Mozilla/5.0 (X11)"',
    "line quoting an address": "SMTP 550 for jerome.dupont+news@mail.example.co.uk: no such user",
    "8 KB aaa...@111...": "a" * (4 * KIB) + "@" + "1" * (4 * KIB),
    "8 KB a.a.a.": "a." * (4 * KIB),
    "8 KB a@b.a@b.": "a@b." * (2 * KIB),
    "1 MB aaa...@111...": "a" * (512 * KIB) + "@" + "1" * (512 * KIB),
}
RUNS = 5
# The previous pattern never finishes on longer text.
PREVIOUS_PATTERN_MAX_CHARS = 8 * KIB + 1
MEASURE = "import json; from bench.log_redaction import measure; print(json.dumps(measure()))"


def median_ms(work: Callable[[], object], runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        start = time.process_time()
        work()
        times.append(time.process_time() - start)
    return round(statistics.median(times) * 1000, 3)


def measure() -> list[dict[str, Any]]:
    """Runs inside the app's directory, where the app's modules import."""
    import logging

    from core.logging import RedactingJsonFormatter

    formatter = RedactingJsonFormatter("%(message)s")
    rows = []
    for name, text in INPUTS.items():

        def log_line(text: str = text) -> str:
            return formatter.format(logging.LogRecord("bench", logging.INFO, "", 0, text, None, None))

        def previous_pattern(text: str = text) -> str:
            return PREVIOUS_PATTERN.sub("[email]", text)

        previous = median_ms(previous_pattern, runs=1) if len(text) <= PREVIOUS_PATTERN_MAX_CHARS else None
        rows.append(
            {"input": name, "chars": len(text), "line_ms": median_ms(log_line), "previous_ms": previous}
        )
    return rows


def shown(milliseconds: float | None) -> object:
    return "-" if milliseconds is None else milliseconds


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argument_parser(__doc__)
    args = parser.parse_args(argv)
    facts = machine_facts()
    child = subprocess.run(
        [sys.executable, "-c", MEASURE],
        cwd=REPO_ROOT / "app",
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    rows = json.loads(child.stdout)
    print(f"Log redaction: CPU time per JSON log line | {describe_machine(facts)}")
    print(
        table(
            ["input", "characters", "ms per line", "previous pattern, ms"],
            [
                (row["input"], row["chars"], row["line_ms"], shown(row["previous_ms"]))
                for row in rows
            ],
        )
    )
    results: dict[str, object] = {"machine": facts, "inputs": rows}
    write_results("log_redaction", results, args.results_dir)
    return results


if __name__ == "__main__":
    main()
