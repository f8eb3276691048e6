"""The benchmark scripts still run and still measure what they claim (tiny sizes, seconds)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from bench import cost, log_redaction, pipeline, scaling, timeline

PRICED_EVERYWHERE = {
    "Load balancer",
    "Fargate",
    "RDS PostgreSQL",
    "ElastiCache",
    "Public IPv4",
    "Secrets Manager",
    "CloudWatch Logs",
}


def test_cost_model_prices_what_dev_and_prod_declare(tmp_path: Path):
    results = cost.main(["--results-dir", str(tmp_path)])
    stacks = {report["name"]: report for report in results["stacks"]}
    dev, prod = stacks["dev"], stacks["prod"]
    for report in (dev, prod):
        missing = PRICED_EVERYWHERE - set(report["by_category"])
        assert not missing, f"{report['name']}: no line for {missing}; lines: {report['items']}"
        assert report["total_usd"] == pytest.approx(
            sum(item["monthly_usd"] for item in report["items"]), abs=0.01
        )
    assert dev["idle_workers_at_zero"], "dev's worker pools are declared with desired count 0"
    assert "NAT gateway" not in dev["by_category"], "dev declares no NAT gateway"
    assert prod["by_category"]["NAT gateway"] > 0, "prod declares a NAT gateway per AZ"
    assert prod["total_usd"] > dev["total_usd"]
    assert prod["by_category"]["WAF"] > 0 and "WAF" not in dev["by_category"], "WAF is on in prod only"
    assert prod["by_category"]["DNS and TLS"] == 0, "alias queries to an ALB and ACM certificates are free"
    assert json.loads((tmp_path / "cost.json").read_text())["stacks"][0]["name"] == "dev"


def test_cost_model_names_a_class_missing_from_the_price_table():
    prices = cost.PriceTable()
    with pytest.raises(cost.CostModelError, match=r"db\.r7g\.huge.*rds_postgres_instance_hour_single_az"):
        prices.rds_instance_hour("db.r7g.huge", multi_az=False)


def test_scaling_model_drains_every_burst_and_returns_to_min(tmp_path: Path):
    results = scaling.main(["--stack", "dev", "--tasks", "200", "--results-dir", str(tmp_path)])
    [burst] = [b for b in results["bursts"] if b["stack"] == "dev"]
    assert burst["first_scale_out_s"] is not None and burst["first_scale_out_s"] <= 20, burst
    assert burst["drained_s"] is not None and burst["back_to_min_s"] > burst["drained_s"], burst
    assert burst["worker_minutes"] >= burst["ideal_worker_minutes"], "no schedule beats doing the work"


@pytest.fixture
def smoke_database_url(database_url: str) -> str:
    """A database of its own next to the test database (the benchmark creates it if missing)."""
    return urlunsplit(urlsplit(database_url)._replace(path="/bench_smoke"))


def test_pipeline_smoke_measures_every_part(tmp_path: Path, smoke_database_url: str):
    results = pipeline.main(["--smoke", "--database-url", smoke_database_url, "--results-dir", str(tmp_path)])
    assert results["enqueue_latency"]["count"] == pipeline.SMOKE.enqueue_requests
    assert results["commit_latency"]["p50_ms"] > 0
    for comparison in results["throughput"]:
        rates = comparison["tasks_per_second"]
        assert set(rates) == set(pipeline.DELIVERY_SETTINGS), comparison
        assert all(rate > 0 for rate in rates.values()), comparison
    assert all(run["tasks_per_second"] > 0 for run in results["noop"]), results["noop"]
    assert {run["test"] for run in results["redis_benchmark"]} == {"LPUSH", "RPOP"}
    profile = results["profile"]
    for part in ("ORM and PostgreSQL", "SMTP", "broker"):
        assert any(name.startswith(part) and ms > 0 for name, ms in profile["ms_per_task"].items()), profile
    assert profile["span_ms_per_task"]["SMTP conversation (send_messages)"] > 0, profile
    assert (tmp_path / "pipeline-smoke.json").exists()


def test_timeline_names_what_sets_the_time_to_a_new_environment(tmp_path: Path) -> None:
    results = timeline.main(["--results-dir", str(tmp_path), "--stack", "dev", "--stack", "prod"])
    dev, prod = results["timelines"]
    for stack in (dev, prod):
        assert stack["set_by"][0] == "database-postgres", f"{stack['stack']}: the database comes first"
        assert "release-migrate" in stack["set_by"] and "web-service" in stack["set_by"], stack["set_by"]
        assert stack["chain"][-1]["done_at"] / 60 == pytest.approx(stack["minutes"], abs=0.1)
    assert prod["minutes"] > dev["minutes"], "Multi-AZ makes prod's first deploy longer"


def test_log_redaction_benchmark_prints_the_cost_per_line(tmp_path: Path):
    results = log_redaction.main(["--results-dir", str(tmp_path)])
    rows = {row["input"]: row for row in results["inputs"]}
    assert set(rows) == set(log_redaction.INPUTS)
    assert rows["1 MB aaa...@111..."]["previous_ms"] is None, "the previous pattern never ends on it"
    assert all(row["line_ms"] >= 0 for row in rows.values())
    assert json.loads((tmp_path / "log_redaction.json").read_text())["inputs"][0]["input"] == "access line"
