"""Shared test settings: where the real PostgreSQL and Redis are, and the order of the run.

Defaults are the local services; set DATABASE_URL / REDIS_URL to run against services elsewhere.
"""

import os
from pathlib import Path

import pytest

INFRA_TESTS = Path(__file__).parent / "infra"

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def database_url() -> str:
    return os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)


@pytest.fixture(scope="session")
def redis_url() -> str:
    return os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The infra tests first (CPU-bound, nothing timed): scripts/test runs the type check beside
    them, before the tests of real processes, whose timings want the machine to themselves."""
    items.sort(key=lambda item: not item.path.is_relative_to(INFRA_TESTS))
