"""What every benchmark shares: machine facts, a plain-text table, and the JSON result file."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "bench" / "results"


def machine_facts() -> dict[str, object]:
    """Where and when the numbers were taken; the load average says how busy the machine was."""
    load_1, load_5, load_15 = os.getloadavg()
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "load_average": [round(load_1, 2), round(load_5, 2), round(load_15, 2)],
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def describe_machine(facts: dict[str, object]) -> str:
    load_average = facts["load_average"]
    assert isinstance(load_average, list | tuple), "machine_facts() gives the load average as a sequence"
    load = ", ".join(str(value) for value in load_average)
    return f"{facts['date']} | {facts['cpu_count']} cores ({facts['cpu_model']}) | load average {load}"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A fixed-width table; numbers right-aligned, text left-aligned."""
    cells = [[str(header) for header in headers]] + [[_cell(value) for value in row] for row in rows]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    numeric = [all(_is_number(row[column]) for row in rows) and rows for column in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            value.rjust(width) if is_numeric else value.ljust(width)
            for value, width, is_numeric in zip(row, widths, numeric, strict=True)
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if value is None:
        return "-"
    return str(value)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def argument_parser(description: str | None) -> argparse.ArgumentParser:
    """The options every benchmark takes."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where the JSON goes")
    return parser


def write_results(name: str, results: dict[str, object], directory: Path = RESULTS_DIR) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    print(f"\nwrote {path}", file=sys.stderr)
    return path
