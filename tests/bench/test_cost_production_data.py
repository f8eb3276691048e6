"""The cost model prices what production data adds: the stack's key, media files, database insight
and the ECS Exec audit log, from what each stack declares."""

from __future__ import annotations

import pytest

from bench.cost import ASSUMPTIONS, PriceTable, estimate
from testkit.program import ProgramRun, run_program


@pytest.fixture(scope="module")
def prod_run() -> ProgramRun:
    return run_program("prod")


@pytest.fixture(scope="module")
def dev_run() -> ProgramRun:
    return run_program("dev")


def lines(run: ProgramRun) -> dict[str, float]:
    return {
        f"{item.category}: {item.item}": item.monthly_usd
        for item in estimate(run, PriceTable(), ASSUMPTIONS[run.stack])
    }


def test_prod_pays_for_its_key_media_monitoring_and_session_audit(prod_run: ProgramRun) -> None:
    priced = lines(prod_run)
    assert priced["KMS: customer-managed keys"] == pytest.approx(1.00)
    assert priced["KMS: requests (assumed)"] == pytest.approx(500_000 / 10_000 * 0.03)
    assert priced["S3 media: storage (assumed)"] == pytest.approx(50 * 0.023)
    assert priced["RDS insight: Performance Insights, 7 days"] == 0
    monitoring = priced["RDS insight: Enhanced Monitoring every 60 s (CloudWatch Logs, assumed event size)"]
    assert monitoring == pytest.approx(730 * 60 * 4 / 1024 / 1024 * 0.50)
    assert priced["CloudWatch Logs: ECS Exec session audit (assumed)"] == pytest.approx(0.05)


def test_dev_pays_only_for_its_media_and_session_audit(dev_run: ProgramRun) -> None:
    priced = lines(dev_run)
    assert not [line for line in priced if line.startswith(("KMS", "RDS insight"))]
    assert priced["S3 media: storage (assumed)"] == pytest.approx(0.023)
