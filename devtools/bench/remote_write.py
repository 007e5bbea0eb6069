"""Remote-write benchmark: real snappy + protobuf ``WriteRequest`` bodies, as Prometheus sends dcgm-exporter
series, POSTed through the whole Django stack (token auth, the view, decode, mapping, storage), beside a raw
COPY of the same rows in the same run; with the process's peak RSS.

A *sample* here is a Prometheus sample (one value of one series); a dcgm-exporter GPU scrape is 13 of them,
stored as one row. Both rates are reported, so they compare with the ingest benchmark (rows) and with
Prometheus' own figures (samples).
"""

from __future__ import annotations

import os
import random
import resource
from datetime import timedelta

import cramjam
from django.db import connection
from django.test import Client
from django.utils import timezone

from devtools.bench.common import bench_database, bench_fleet, raw_copy_timed, timed
from devtools.bench.ingest import DCGM_FIELDS
from devtools.bench.workers import run_in_processes
from fleet.telemetry.remote_write_pb import WriteRequestRaw, write_request_body
from fleet.telemetry.storage import partitions_ensure

TARGET_SAMPLES_PER_S = 200_000
URL = "/api/v1/telemetry/remote-write"


def _bodies(fleet, *, slots: int, series_per_request: int, start_ms: int, interval_ms: int) -> list[bytes]:
    """The requests a Prometheus scraping every GPU's dcgm-exporter ``slots`` times would send."""
    rng = random.Random(11)  # noqa: S311 - reproducible benchmark data
    series = []
    for slot in range(slots):
        ms = start_ms + slot * interval_ms + 1_234
        for node, gpus in fleet:
            for gpu in gpus:
                util = rng.randrange(0, 101)
                values = {
                    "DCGM_FI_DEV_GPU_UTIL": util,
                    "DCGM_FI_DEV_POWER_USAGE": rng.uniform(60, 700),
                    "DCGM_FI_DEV_GPU_TEMP": rng.randrange(30, 85),
                    "DCGM_FI_DEV_FB_USED": util * 800,
                    "DCGM_FI_DEV_FB_FREE": 81920 - util * 800,
                    "DCGM_FI_DEV_SM_CLOCK": 1980,
                }
                for name, _kind in DCGM_FIELDS:
                    labels = {
                        "__name__": name,
                        "DCGM_FI_DRIVER_VERSION": "550.54.15",
                        "Hostname": node.name,
                        "UUID": gpu.uuid,
                        "device": f"nvidia{gpu.index}",
                        "gpu": str(gpu.index),
                        "instance": f"{node.name}:9400",
                        "job": "dcgm",
                        "modelName": gpu.model,
                    }
                    series.append((labels, [(float(values.get(name, 0)), ms)]))
    return [write_request_body(series[i : i + series_per_request]) for i in range(0, len(series), series_per_request)]


def _rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


_CLIENT: Client | None = None
_BODIES: list[bytes] = []


def _send(index: int) -> tuple[int, str]:
    """POST one body (in a worker process: its own client and database connection); its index, and any error
    (returned, not raised: a worker that dies leaves its figures unsent)."""
    try:
        response = _CLIENT.post(URL, data=_BODIES[index], content_type="application/x-protobuf")
    except Exception as exc:  # noqa: BLE001 - reported by the parent
        return index, repr(exc)[:300]
    if response.status_code != 204:
        return index, f"remote-write answered {response.status_code}: {response.content[:300]!r}"
    return index, ""


def run(*, nodes: int = 250, gpus_per_node: int = 8, slots: int = 16, series_per_request: int = 10_000) -> dict:
    """Time the endpoint on ``slots`` scrapes of ``nodes`` × ``gpus_per_node`` GPUs (half by one process, half by
    this machine's processes), after one cold scrape; and a raw COPY of the same rows beside it."""
    from django.contrib.auth import get_user_model

    from core.choices import Role
    from core.services import api_token_create, user_set_role

    global _CLIENT, _BODIES  # noqa: PLW0603 - what the forked workers use
    gpus = nodes * gpus_per_node
    with bench_database():
        fleet = bench_fleet(nodes=nodes, gpus_per_node=gpus_per_node)
        now = timezone.now()
        for day in (-1, 0):
            partitions_ensure(now=now + timedelta(days=day), days_ahead=1)
        user = get_user_model().objects.create_user(username="prometheus", password=None)  # token only
        user_set_role(user=user, role=Role.OPERATOR)
        _, secret = api_token_create(user=user, name="bench", read_only=False)
        interval_ms = 15_000
        start_ms = int((now - timedelta(hours=2)).timestamp() * 1000)
        start_ms -= start_ms % interval_ms
        per_slot = gpus * len(DCGM_FIELDS)
        shape = {"series_per_request": series_per_request, "interval_ms": interval_ms}
        cold = _bodies(fleet, slots=1, start_ms=start_ms, **shape)
        _BODIES = _bodies(fleet, slots=slots, start_ms=start_ms + interval_ms, **shape)
        _CLIENT = Client(
            HTTP_AUTHORIZATION=f"Bearer {secret}",
            HTTP_CONTENT_ENCODING="snappy",
            HTTP_X_PROMETHEUS_REMOTE_WRITE_VERSION="0.1.0",
        )
        rss_start = _rss_mib()

        def send(bodies: list[bytes]) -> None:
            for body in bodies:
                response = _CLIENT.post(URL, data=body, content_type="application/x-protobuf")
                if response.status_code != 204:
                    raise RuntimeError(f"remote-write answered {response.status_code}: {response.content[:300]!r}")

        # The first scrape of every series: each label set is decoded once, then cached for good.
        cold_s, _ = timed(lambda: send(cold))
        half = len(_BODIES) // 2
        one_s, _ = timed(lambda: send(_BODIES[:half]))
        rss_one = _rss_mib()
        one_samples = sum(_samples_in(b) for b in _BODIES[:half])
        processes = max(2, os.cpu_count() or 1)
        parallel_s, figures = run_in_processes(_send, list(range(half, len(_BODIES))), processes)
        errors = [error for f in figures for _, error in f.results if error]
        if errors:
            raise RuntimeError(f"{len(errors)} requests failed in the worker processes; first: {errors[0]}")
        parallel_samples = sum(_samples_in(_BODIES[i]) for f in figures for i, _ in f.results)
        per_process = [sum(_samples_in(_BODIES[i]) for i, _ in f.results) / f.busy_s for f in figures if f.busy_s]
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM fleet_gpu_sample")
            rows = cursor.fetchone()[0]
        expected_rows = (slots + 1) * gpus
        if rows != expected_rows:
            raise RuntimeError(f"stored {rows} rows, expected {expected_rows}")

        # Baseline: a raw COPY of the same number of rows straight into the table (no decoding, no checks).
        gpu_ids = [g.pk for _, node_gpus in fleet for g in node_gpus]
        copy_s, copy_rows = raw_copy_timed(gpu_ids=gpu_ids, start=now - timedelta(hours=1), slots=slots)
        body_bytes = sum(len(b) for b in _BODIES)
    samples_per_row = len(DCGM_FIELDS)
    parallel_rate = parallel_samples / parallel_s
    return {
        "bench": "remote-write",
        "gpus": gpus,
        "requests": len(cold) + len(_BODIES),
        "samples": per_slot * (slots + 1),
        "samples_per_request": series_per_request,
        "samples_per_row": samples_per_row,
        "compressed_bytes_per_request": round(body_bytes / len(_BODIES)),
        "cold_samples_per_s": round(per_slot / cold_s),
        "one_process_samples_per_s": round(one_samples / one_s),
        "processes": processes,
        "processes_samples_per_s": round(parallel_rate),
        "per_process_samples_per_s": [round(r) for r in per_process],
        "processes_rows_per_s": round(parallel_rate / samples_per_row),
        "raw_copy_rows_per_s": round(copy_rows / copy_s),
        "target_samples_per_s": TARGET_SAMPLES_PER_S,
        "target_met": parallel_rate >= TARGET_SAMPLES_PER_S,
        # The benchmark process holds every body it sends; a worker process is what an endpoint process needs.
        "bench_process_peak_rss_mib": rss_one,
        "bench_process_rss_before_requests_mib": rss_start,
        "endpoint_process_peak_rss_mib": round(max(f.peak_rss_mib for f in figures), 1),
    }


def _samples_in(body: bytes) -> int:
    return len(WriteRequestRaw.FromString(bytes(cramjam.snappy.decompress_raw(body))).timeseries)


def run_scaled(scale: float) -> dict:
    """``run`` with the fleet size multiplied by ``scale`` (1.0: 2,000 GPUs, 17 scrapes, 442,000 samples)."""
    return run(nodes=max(1, round(250 * scale)), series_per_request=max(100, round(10_000 * min(1.0, scale * 4))))
