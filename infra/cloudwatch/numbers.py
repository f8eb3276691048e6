"""Numbers as CloudWatch reads them in metric math expressions and step bounds."""

from __future__ import annotations

from decimal import Decimal

# Significant digits kept: enough that an alarm and the simulator agree on every threshold.
MATH_DIGITS = 10


def math_number(value: float) -> str:
    """Plain decimal notation (1382400, 0.25, -3), never an exponent such as 1.3824e+06.

    The metric math syntax documents numbers as decimal literals only (CloudWatch user guide,
    "Metric math syntax and functions"); Python's `g` format switches to an exponent at 1e6.
    """
    text = format(Decimal(f"{value:.{MATH_DIGITS}g}"), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
