"""The stack config keys of the per-entry alarms: declared, documented, checked."""

from __future__ import annotations

import pytest
import yaml

from infra.config.reader import ConfigReader, StackConfigError
from infra.schedules.config import ScheduleAlarmsConfig
from infra.stack import PROJECT_FILE, validate
from queuemetrics import schema
from testkit.program import bare_config

KEYS = ("scheduleAlarmPeriods", "scheduleAlarmMinimumMinutes")


def declared_defaults() -> dict[str, object]:
    config = yaml.safe_load(PROJECT_FILE.read_text())["config"]
    return {key: config[key]["default"] for key in KEYS}


def test_the_defaults_are_the_ones_the_app_judges_entries_with() -> None:
    """`manage.py schedules` and the alarms must call the same entries late by default."""
    read = ConfigReader(declared_defaults())
    config = ScheduleAlarmsConfig.read(read)

    assert read.problems == []
    assert config.periods == schema.STALE_AFTER_PERIODS
    assert config.minimum_seconds == schema.STALE_AFTER_MINIMUM_SECONDS


def test_the_keys_are_declared_with_a_type_and_documented() -> None:
    config = yaml.safe_load(PROJECT_FILE.read_text())["config"]
    reference = (PROJECT_FILE.parent / "README.md").read_text()
    for key in KEYS:
        assert config[key]["type"] == "integer" and config[key]["description"]
        assert f"| `{key}` |" in reference, f"README.md has no configuration reference row for {key}"


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("scheduleAlarmPeriods", 0, "an integer from 1 to 10"),
        ("scheduleAlarmPeriods", "two", "an integer from 1 to 10"),
        ("scheduleAlarmMinimumMinutes", 3, "an integer from 5 to 1440"),
        ("scheduleAlarmMinimumMinutes", 2000, "an integer from 5 to 1440"),
    ],
)
def test_a_bad_value_is_refused_naming_the_key_and_the_allowed_values(
    key: str, value: object, allowed: str
) -> None:
    read = ConfigReader({**declared_defaults(), key: value})

    ScheduleAlarmsConfig.read(read)

    assert [(problem.key, problem.allowed) for problem in read.problems] == [(key, allowed)]


def test_the_stack_config_refuses_a_bad_value_before_anything_is_declared() -> None:
    with pytest.raises(StackConfigError) as refused:
        validate(bare_config("pr-123", {"scheduleAlarmMinimumMinutes": 1}))

    assert refused.value.keys == ["scheduleAlarmMinimumMinutes"]
    assert "an integer from 5 to 1440" in str(refused.value)
    assert validate(bare_config("dev")).schedule_alarms == ScheduleAlarmsConfig(periods=2, minimum_minutes=5)
