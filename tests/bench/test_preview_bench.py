"""The preview rows of the timeline and cost models: what a thin preview waits for and pays for, next
to the base and the full copy, and the targets of issue 26 as the benchmarks print them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import cost, preview, timeline


def test_the_timeline_prints_base_preview_and_full_copy_with_the_target(tmp_path: Path, capsys) -> None:
    results = timeline.main(["--results-dir", str(tmp_path), "--stack", "pr-1"])
    printed = capsys.readouterr().out
    [full_copy] = results["timelines"]
    fresh, base = results["preview"], results["preview_base"]

    # No database server, broker or load balancer on a preview's path: they are the base's.
    assert not {"database-postgres", "broker-redis", "web-lb-alb"} & set(fresh["set_by"]), fresh["set_by"]
    assert fresh["set_by"][-2:] == ["release-migrate", "app-service"], "migrations, then the app"
    assert base["set_by"][0] == "database-postgres", "the base waits for its database server, once"
    assert fresh["minutes"] < full_copy["minutes"], (fresh["minutes"], full_copy["minutes"])
    verdict = "met" if fresh["minutes"] <= timeline.PREVIEW_TARGET_MINUTES else "NOT met"
    assert results["preview_target_met"] == (verdict == "met")
    assert f"in <= 5 min: {verdict} ({fresh['minutes']} min)" in printed
    for name in ("pr-1", "preview-base (once)", "pr-N thin preview on the base"):
        assert name in printed


def test_an_idle_preview_pays_for_its_tasks_and_monitoring_not_for_what_the_base_owns() -> None:
    prices = cost.PriceTable()
    private, public = (cost.preview_report(network, prices) for network in preview.NETWORKS)

    categories = {item["category"] for item in private["items"] if item["monthly_usd"] > 0}
    assert not categories & {"RDS", "ElastiCache", "Load balancer", "NAT gateway"}, categories
    assert {"Fargate", "Secrets Manager"} <= categories, categories
    # On a base without NAT every running task has a public IPv4 address ($0.005 an hour).
    ipv4 = [item for item in public["items"] if item["category"] == "Public IPv4"]
    assert ipv4 and all(item["monthly_usd"] == pytest.approx(0.005 * 730) for item in ipv4), ipv4
    assert public["total_usd"] > private["total_usd"]


def test_the_cost_model_prints_the_preview_next_to_the_full_copy(tmp_path: Path, capsys) -> None:
    results = cost.main(["--results-dir", str(tmp_path), "--stack", "dev"])
    printed = capsys.readouterr().out

    full_copy = results["full_copy"]["total_usd"]
    assert full_copy > 4 * results["previews"][0]["total_usd"], "a preview costs a fraction of a whole stack"
    verdict = "met" if results["previews"][0]["total_usd"] <= cost.PREVIEW_TARGET_USD else "NOT met"
    assert f"target idle preview <= $5/month, idle preview, base with a NAT gateway: {verdict}" in printed
    assert f"the full copy: ${full_copy:.2f}" in printed
