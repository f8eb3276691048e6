"""Reading raw stack config values and collecting every problem instead of stopping at the first.

The Pulumi CLI hands the program strings (JSON for lists and objects). Each part of the stack config
(`infra/<concern>/config.py`) reads its own keys through a `ConfigReader`: a read returns a typed
value, and a bad or missing value is recorded as a `ConfigProblem` and replaced by a harmless
placeholder, so the part can still be built and the remaining keys checked. Rules that combine
keys ask `valid(...)` first, so they never report a consequence of an earlier mistake. The stack
config root raises one `StackConfigError` listing every problem once all parts have been read.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

Choice = TypeVar("Choice", bound=str)
# What several parts accept as an e-mail address (a sender, an alarm recipient).
EMAIL_ADDRESS_PATTERN = r"[^@\s]+@[^@\s]+\.[^@\s]+"


class _Missing:
    def __repr__(self) -> str:
        return "(missing)"


MISSING: Final = _Missing()


@dataclass(frozen=True)
class ConfigProblem:
    key: str
    value: object
    allowed: str
    secret: bool = False  # the value is never shown (it may hold credentials)

    def __str__(self) -> str:
        if self.value is MISSING:
            shown = "(missing)"
        elif self.secret:
            shown = "(secret value hidden)"
        else:
            shown = json.dumps(self.value, default=str)
        return f"{self.key}: got {shown}; allowed: {self.allowed}"


class StackConfigError(ValueError):
    """Every problem found in the stack configuration, one line per key."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"Invalid stack configuration ({len(self.problems)} problem(s)):\n{lines}")

    @property
    def keys(self) -> list[str]:
        return [problem.key for problem in self.problems]


class ConfigReader:
    """Typed reads of bare keys (no `project:` namespace) that record problems instead of raising."""

    def __init__(self, raw: Mapping[str, object], secret_keys: Iterable[str] = ()) -> None:
        self._raw = raw
        self._secret_keys = frozenset(secret_keys)
        self.problems: list[ConfigProblem] = []
        self.read_keys: set[str] = set()
        self.retired_keys: set[str] = set()

    # --- recording -----------------------------------------------------------------------------

    def report(self, key: str, value: object, allowed: str) -> None:
        secret = key.split(".")[0].split("[")[0] in self._secret_keys
        self.problems.append(ConfigProblem(key, value, allowed, secret))

    def valid(self, *keys: str) -> bool:
        """No problem has been recorded for these keys (nor for anything inside them)."""
        return not any(
            problem.key == key or problem.key.startswith((f"{key}[", f"{key}.", f"{key}/"))
            for problem in self.problems
            for key in keys
        )

    def raw(self, key: str) -> object:
        """The value as the CLI gave it, or MISSING; for parts that parse a structure themselves."""
        self.read_keys.add(key)
        return self._raw.get(key, MISSING)

    # --- typed reads ---------------------------------------------------------------------------

    def boolean(self, key: str) -> bool:
        value = self.raw(key)
        parsed = parse_bool(value)
        if parsed is None:
            self.report(key, value, "true or false")
        return bool(parsed)

    def integer(self, key: str, low: int, high: int | None = None) -> int:
        return self.integer_value(key, self.raw(key), low, high)

    def integer_value(self, key: str, value: object, low: int, high: int | None = None) -> int:
        parsed = parse_int(value)
        if parsed is None or parsed < low or (high is not None and parsed > high):
            allowed = (
                f"an integer from {low} to {high}" if high is not None else f"an integer of at least {low}"
            )
            self.report(key, value, allowed)
            return low
        return parsed

    def tenths(self, key: str, low: float, high: float) -> float:
        """A number from `low` to `high` in steps of 0.1 (e.g. `10` or `2.5`), as AWS takes percentages."""
        value = self.raw(key)
        text = (
            str(value).strip() if isinstance(value, str | int | float) and not isinstance(value, bool) else ""
        )
        parsed = float(text) if re.fullmatch(r"\d+(\.\d)?", text) else None
        if parsed is None or not low <= parsed <= high:
            self.report(key, value, f"a number from {low:g} to {high:g} in steps of 0.1, e.g. {high / 10:g}")
            return low
        return parsed

    def choice(self, key: str, choices: Sequence[Choice]) -> Choice:
        value = self.raw(key)
        for choice in choices:
            if value == choice:
                return choice
        self.report(key, value, ", ".join(choices))
        return choices[0]

    def integer_choice(self, key: str, choices: Sequence[int]) -> int:
        value = self.raw(key)
        parsed = parse_int(value)
        if parsed is None or parsed not in choices:
            self.report(key, value, ", ".join(str(choice) for choice in choices))
            return choices[0]
        return parsed

    def string(self, key: str, pattern: str, allowed: str) -> str:
        value = self.raw(key)
        if not isinstance(value, str) or not re.fullmatch(pattern, value):
            self.report(key, value, allowed)
            return ""
        return value

    def refused(self, key: str, reason: str) -> None:
        """A boolean that must stay false; `reason` says why."""
        if self.boolean(key):
            self.report(key, self.raw(key), f"false ({reason})")

    def retired(self, key: str, instead: str) -> None:
        """A key the project no longer reads: a stack that still sets it learns what replaced it."""
        if key in self._raw:
            self.retired_keys.add(key)
            self.report(key, self._raw[key], f"no longer a key: {instead}")

    def json_value(self, key: str) -> object:
        """A list or object key: JSON text from the CLI, or already parsed (stack files in tests)."""
        value = self.raw(key)
        if not isinstance(value, str):
            return value
        try:
            parsed: object = json.loads(value)
        except json.JSONDecodeError:
            return value
        return parsed

    # --- keys nobody reads ----------------------------------------------------------------------

    def report_unknown_keys(self) -> None:
        """Keys of the project's namespace that no part read: typos such as `webDesiredCont`."""
        known = sorted(self.read_keys)
        for key in sorted(set(self._raw) - self.read_keys - self.retired_keys):
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}? " if close else ""
            self.report(key, self._raw[key], f"no such key; {hint}known keys: {', '.join(known)}")


def parse_bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    return {"true": True, "false": False}.get(value) if isinstance(value, str) else None


def parse_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return None


def parse_number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
