"""The buy-vs-rent benchmark command runs at a tiny scale and prints its figures beside its baseline (the same
sums from the hourly ledger), the answer agreeing with that baseline."""

import pytest

from tests.bench_run import bench_figures

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def test_buyrent_benchmark_prints_its_figures_beside_the_hourly_ledger_baseline():
    figures = bench_figures("buyrent", "0.002")
    assert figures["nodes"] == 20 and figures["gpus"] == 160
    # 20 nodes × 30 days × 24 hours of ledger, rolled up; the spend bench's four GPU models, each priced.
    assert figures["ledger_entries"] == 20 * 30 * 24 and figures["ledger_days"] > 0
    assert figures["gpu_models"] == 4
    assert figures["usage_agrees_with_ledger_entries"] is True
    for name in ("api", "page", "service", "baseline_sums_from_ledger_entries", "healthz_floor"):
        assert 0 < figures[name]["p50_ms"] <= figures[name]["p95_ms"], name
    assert figures["target_p95_ms"] == 200
    assert figures["meets_target"] == (max(figures["api"]["p95_ms"], figures["page"]["p95_ms"]) <= 200)
