"""Optimality: on small random instances (30 jobs × 20 nodes + the offer catalogue), the fast method's and
greedy's total cost against the exact optimum of the 0/1 program (HiGHS), solved in the same run.

All jobs of an instance share one priority tier, so the MILP's answer is the batch's true optimum.
Run with ``manage.py bench optimality [--scale 0.1]``.
"""

from __future__ import annotations

import dataclasses
import random
import statistics
import time

from devtools.bench.world import BenchNetwork, bench_datasets, bench_jobs, bench_nodes, bench_offers
from scheduler.optimizer import place_batch

TARGET_GAP_PCT = 2.0
INSTANCES = 100
JOBS, NODES, DATASETS = 30, 20, 15


def _instance(seed: int, offers: list) -> dict:
    rng = random.Random(seed)  # noqa: S311 - reproducible benchmark data
    nodes = bench_nodes(NODES, rng, busy=0.1)
    datasets = bench_datasets(DATASETS, rng, min_gb=50, max_gb=20_000)
    jobs = [dataclasses.replace(job, priority=0) for job in bench_jobs(JOBS, rng, list(datasets), max_hours=24)]
    return {"jobs": jobs, "nodes": nodes, "offers": offers, "datasets": datasets, "network": BenchNetwork()}


def run_scaled(scale: float) -> dict:
    """Solve each instance three ways; report the gap of fast and greedy to the MILP optimum."""
    offers = bench_offers()
    count = max(3, round(INSTANCES * scale))
    gaps = {"fast": [], "greedy": []}
    seconds = {"fast": [], "greedy": [], "milp": []}
    on_nodes = []
    for seed in range(count):
        instance = _instance(seed, offers)
        totals = {}
        for method in ("milp", "fast", "greedy"):
            started = time.perf_counter()
            result = place_batch(**instance, method=method)
            seconds[method].append(time.perf_counter() - started)
            totals[method] = result.total_usd()
            if method == "milp":
                on_nodes.append(sum(1 for d in result.decisions.values() if d.chosen.kind == "node"))
        for method in ("fast", "greedy"):
            gaps[method].append(float((totals[method] - totals["milp"]) / totals["milp"] * 100))
    figures = {
        "bench": "optimality",
        "scale": scale,
        "instances": count,
        "jobs_per_instance": JOBS,
        "nodes_per_instance": NODES,
        "offers": len(offers),
        "mean_jobs_on_existing_nodes": round(statistics.mean(on_nodes), 1),
        "target_gap_pct": TARGET_GAP_PCT,
    }
    for method in ("fast", "greedy"):
        figures[f"{method}_mean_gap_pct"] = round(statistics.mean(gaps[method]), 3)
        figures[f"{method}_max_gap_pct"] = round(max(gaps[method]), 3)
        figures[f"{method}_optimal_instances"] = sum(1 for gap in gaps[method] if gap < 1e-9)
    for method, values in seconds.items():
        figures[f"{method}_mean_ms"] = round(statistics.mean(values) * 1000, 2)
    figures["meets_target"] = figures["fast_max_gap_pct"] <= TARGET_GAP_PCT
    return figures
