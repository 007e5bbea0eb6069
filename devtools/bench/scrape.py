"""Scrape benchmark: 10,000 simulated agent endpoints of 8 GPUs each polled as scrape shards (the real poll:
fetch, parse, store) by 1 and then 2 worker processes, beside fetch-only passes over the same endpoints with
and without keep-alive reuse, in the same run. Target: within one 15 s poll interval with 2 processes. The
simulator runs in its own process with its answers cached, on the same cores."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.utils import timezone

from devtools.bench.common import bench_database, bench_fleet, connection_database_url, timed
from devtools.bench.workers import run_in_processes
from fleet.models import Node
from fleet.telemetry.fetch import pool_clear
from fleet.telemetry.poll import fetch_many, token_resolve
from fleet.telemetry.shards import polled_node_ids, shard_poll, shards_plan
from fleet.telemetry.storage import partitions_ensure

TARGET_S = 15.0
TOKEN_ENV = "FLEETDECK_BENCH_AGENT_TOKEN"  # noqa: S105 - a variable name, not a token
ROOT = Path(__file__).resolve().parents[2]


def _wait_ready(url: str, token: str, proc: subprocess.Popen, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the simulator exited with {proc.returncode}")
        try:
            request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
            with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("the simulator did not come up")


def _shard_job(item: tuple) -> dict:
    """One scrape shard, as the Celery task runs it (fleet.telemetry.shards.shard_poll)."""
    index, count, node_ids, when = item
    started = time.perf_counter()
    report = shard_poll(index=index, count=count, node_ids=node_ids, scheduled_at=when, now=when)
    return {"s": time.perf_counter() - started, "ok": report.nodes_ok, "added": report.samples_added}


def _sharded_poll(processes: int, when) -> dict:
    """One poll cycle of every node, split into shards as the beat tick splits it, run by ``processes`` workers."""
    shards = shards_plan(polled_node_ids())
    items = [(i, len(shards), ids, when) for i, ids in enumerate(shards) if ids]
    wall_s, figures = run_in_processes(_shard_job, items, processes)
    jobs = [job for figure in figures for job in figure.results]
    return {
        "s": wall_s,
        "shards": len(items),
        "nodes_ok": sum(j["ok"] for j in jobs),
        "samples_added": sum(j["added"] for j in jobs),
        "shard_s_max": max(j["s"] for j in jobs),
        "peak_rss_mib": max(f.peak_rss_mib for f in figures),
        "rss_growth_mib": max(f.peak_rss_mib - f.start_rss_mib for f in figures),
    }


def run(*, nodes: int = 10_000, gpus_per_node: int = 8, port: int = 9599) -> dict:
    token = "bench-" + uuid.uuid4().hex
    os.environ[TOKEN_ENV] = token
    base_url = f"http://127.0.0.1:{port}"
    with bench_database():
        bench_fleet(
            nodes=nodes,
            gpus_per_node=gpus_per_node,
            telemetry_url=f"{base_url}/nodes/{{name}}/metrics",
            token_ref=f"env:{TOKEN_ENV}",
            seed=3,
        )
        partitions_ensure(now=timezone.now())
        env = {**os.environ, "DEBUG": "true", "DATABASE_URL": connection_database_url(), "FLEETDECK_AGENT_TOKEN": token}
        proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "manage.py", "simulate", "--port", str(port), "--cache-s", "3600", "--no-faults"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait_ready(f"{base_url}/nodes/bench-00000/metrics", token, proc)
            targets = list(
                (pk, url, token_resolve(ref))
                for pk, url, ref in Node.objects.values_list("pk", "telemetry_url", "token_ref")
            )
            concurrency = settings.TELEMETRY_POLL_CONCURRENCY

            def fetch(reuse: bool) -> list:
                return fetch_many(targets, timeout_s=30, concurrency=concurrency, reuse=reuse)

            warm_s, _ = timed(lambda: fetch(True))
            fetch_s, fetched = timed(lambda: fetch(True))
            fetch_new_s, _ = timed(lambda: fetch(False))
            pool_clear()
            fetch_ok = sum(1 for r in fetched if r.body is not None)
            # Two cycles into two slots (an interval apart), so neither finds the other's samples stored.
            interval = timedelta(seconds=settings.TELEMETRY_POLL_INTERVAL_S)
            base = timezone.now()
            one = _sharded_poll(1, base)
            two = _sharded_poll(2, base + interval)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM fleet_gpu_sample")
            stored = cursor.fetchone()[0]
    return {
        "bench": "scrape",
        "endpoints": nodes,
        "gpus": nodes * gpus_per_node,
        "concurrency": concurrency,
        "shard_size": settings.TELEMETRY_SHARD_SIZE,
        "shards": two["shards"],
        "poll_s": round(two["s"], 2),
        "poll_1_process_s": round(one["s"], 2),
        "poll_2_processes_s": round(two["s"], 2),
        "speedup_1_to_2": round(one["s"] / two["s"], 2),
        "poll_nodes_ok": two["nodes_ok"],
        "poll_1_process_nodes_ok": one["nodes_ok"],
        "poll_samples_added": two["samples_added"],
        "samples_stored": stored,
        "shard_s_max": round(max(one["shard_s_max"], two["shard_s_max"]), 2),
        # Forked workers inherit the benchmark's own memory: the growth while running shards is the shard's.
        "shard_task_rss_growth_mib": round(max(one["rss_growth_mib"], two["rss_growth_mib"]), 1),
        "worker_peak_rss_mib": round(max(one["peak_rss_mib"], two["peak_rss_mib"]), 1),
        "fetch_only_s": round(fetch_s, 2),
        "fetch_only_new_connection_each_s": round(fetch_new_s, 2),
        "fetch_only_ok": fetch_ok,
        "simulator_warmup_s": round(warm_s, 2),
        "poll_vs_fetch_only": round(two["s"] / fetch_s, 2),
        "target_s": TARGET_S,
        "meets_target": two["s"] <= TARGET_S and two["nodes_ok"] == nodes,
    }


def run_scaled(scale: float) -> dict:
    """``run`` with the endpoint count multiplied by ``scale`` (1.0: 10,000 endpoints, 80,000 GPUs)."""
    return run(nodes=max(1, round(10_000 * scale)))
