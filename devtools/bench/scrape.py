"""Scrape benchmark: one worker polls 10,000 simulated agent endpoints of 8 GPUs each (the real poll: fetch,
parse, store), beside a fetch-only pass over the same endpoints in the same run. Target: within one 15 s
poll interval. The simulator runs in its own process with its answers cached, so the poller is what is timed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.utils import timezone

from devtools.bench.common import bench_database, bench_fleet, connection_database_url, timed
from fleet.models import Node
from fleet.telemetry.poll import fetch_many, telemetry_poll, token_resolve
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
            warm_s, _ = timed(
                lambda: fetch_many(targets, timeout_s=30, concurrency=settings.TELEMETRY_POLL_CONCURRENCY)
            )
            fetch_s, fetched = timed(
                lambda: fetch_many(targets, timeout_s=30, concurrency=settings.TELEMETRY_POLL_CONCURRENCY)
            )
            fetch_ok = sum(1 for r in fetched if r.body is not None)
            poll_s, report = timed(telemetry_poll)
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
        "concurrency": settings.TELEMETRY_POLL_CONCURRENCY,
        "poll_s": round(poll_s, 2),
        "poll_nodes_ok": report.nodes_ok,
        "poll_samples_added": report.samples_added,
        "samples_stored": stored,
        "fetch_only_s": round(fetch_s, 2),
        "fetch_only_ok": fetch_ok,
        "simulator_warmup_s": round(warm_s, 2),
        "poll_vs_fetch_only": round(poll_s / fetch_s, 2),
        "target_s": TARGET_S,
        "meets_target": poll_s <= TARGET_S and report.nodes_ok == nodes,
    }


def run_scaled(scale: float) -> dict:
    """``run`` with the endpoint count multiplied by ``scale`` (1.0: 10,000 endpoints, 80,000 GPUs)."""
    return run(nodes=max(1, round(10_000 * scale)))
