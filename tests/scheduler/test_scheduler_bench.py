"""The scheduler benchmarks run at a tiny scale, through the real ``manage.py bench`` command, and print their
JSON line with the product figure beside its baseline; the full-scale figures are in docs/benchmarks.md."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.bench import gravity, optimality, placement

ROOT = Path(__file__).resolve().parents[2]


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
    # These benchmarks need no database: the optimiser is pure Python.
    env = {**os.environ, "DEBUG": "true"}
    result = subprocess.run(
        [sys.executable, "manage.py", "bench", name, "--scale", scale],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["bench"] == name
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
