"""The report benchmark runs at a tiny scale and prints its figures beside the raw-aggregate baseline."""

import pytest

from tests.bench_run import bench_figures

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def test_report_benchmark_prints_build_time_beside_the_raw_query():
    figures = bench_figures("report", "0.005")
    assert {"report_build", "report_data_only", "raw_aggregate_query"} <= set(figures)
    assert figures["report_build"]["p95_ms"] >= figures["report_build"]["p50_ms"] > 0
    assert figures["ledger_entries"] == figures["nodes"] * 30 * 24
    assert figures["totals_agree"] is True
