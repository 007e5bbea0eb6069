"""The scheduler benchmarks run at a tiny scale, through the real ``manage.py bench`` command, and print their
JSON line with the product figure beside its baseline; the full-scale figures are in docs/benchmarks.md."""

import pytest

from devtools.bench import gravity, optimality, placement
from tests.bench_run import bench_figures


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "scale", "keys"),
    [
        ("placement", "0.01", {"fast_placements_per_s", "greedy_placements_per_s", "target_placements_per_s"}),
        ("optimality", "0.03", {"fast_mean_gap_pct", "fast_max_gap_pct", "greedy_mean_gap_pct", "milp_mean_ms"}),
        ("gravity", "0.02", {"saving_vs_blind_pct", "product_egress_usd", "blind_egress_usd"}),
    ],
)
def test_bench_command_prints_the_figures_beside_the_baseline(name, scale, keys):
    figures = bench_figures(name, scale, database=False)
    assert keys <= set(figures), figures


def test_placement_places_or_explains_every_job():
    figures = placement.run_scaled(0.01)
    assert figures["jobs"] == 100
    for method in ("fast", "greedy"):
        assert figures[f"{method}_placed"] + figures[f"{method}_unplaced"] == figures["jobs"]
        assert figures[f"{method}_placements_per_s"] > 0
    # Same capacity, jointly placed: never dearer than greedy on this seeded batch.
    assert float(figures["fast_total_usd"]) <= float(figures["greedy_total_usd"])


def test_optimality_gaps_are_measured_against_the_exact_optimum():
    figures = optimality.run_scaled(0.03)
    assert figures["instances"] == 3
    # The MILP is exact, so neither heuristic can beat it.
    assert figures["fast_mean_gap_pct"] >= 0 and figures["greedy_mean_gap_pct"] >= 0
    assert figures["fast_max_gap_pct"] <= figures["greedy_max_gap_pct"] + 1e-9


def test_gravity_compares_with_the_egress_blind_placement_on_the_same_trace():
    figures = gravity.run_scaled(0.02)
    assert figures["jobs"] == 50
    assert int(figures["product_egress_usd"]) < int(figures["blind_egress_usd"])
    assert figures["saving_vs_blind_pct"] > 0
