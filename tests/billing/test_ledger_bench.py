"""The ledger benchmark command runs at a tiny scale and prints its figure beside the naive baseline, and the
carbon + commitments overhead beside the same world without them."""

import pytest

from tests.bench_run import bench_figures

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def test_ledger_benchmark_prints_rows_per_s_beside_the_naive_loop_and_the_cost_truth_overhead():
    figures = bench_figures("ledger", "0.002")
    assert figures["nodes"] == 20
    assert figures["product_rows_per_s"] > 0 and figures["naive_rows_per_s"] > 0
    # 20 nodes × 720 h, less the hours before a mid-period launch or after a mid-period end.
    assert 10_000 < figures["product_rows"] <= 20 * 720
    # The naive loop computes the same rows as the product (up to rounding in the sixth decimal).
    assert figures["naive_rows_matching_product"] == figures["naive_rows"] > 0
    assert float(figures["naive_vs_product_max_abs_diff"]) <= 0.000001
    assert figures["unpriced_nodes"] >= 1
    # The overhead: both worlds timed in the same run, the cost-truth one actually covering and emitting.
    assert len(figures["overhead_plain_s"]) == len(figures["overhead_cost_truth_s"]) == figures["overhead_rounds"] >= 1
    plain, truth = min(figures["overhead_plain_s"]), min(figures["overhead_cost_truth_s"])
    assert abs(figures["overhead_pct"] - (truth - plain) * 100 / plain) < 2  # from the rounded seconds
    assert figures["overhead_meets_target"] == (figures["overhead_pct"] <= figures["overhead_target_pct"] == 20)
    checks = figures["overhead_checks"]
    assert checks["covered_entries"] > 0 and checks["entries_with_co2e"] == figures["product_rows"]
    # Four commitments, each in force over its part of the 720 hours: the two RIs back to back (720), the
    # savings plans all 720.
    assert figures["overhead_world"]["commitments"] == 4 and checks["commitment_hours"] == 3 * 720
    assert "insert_day" in figures["overhead_phases_plain_s"]
    assert "commitments_count_apply" in figures["overhead_phases_cost_truth_s"]
