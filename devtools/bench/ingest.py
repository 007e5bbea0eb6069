"""Ingest benchmark: dcgm-exporter text → stored rows, into the production sample table already holding
millions of rows, by one process and then by this machine's worker processes (each its own nodes, as scrape
shards), beside a raw COPY of the same rows and the naive ORM path (bulk_create), in one run."""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta

from django.db import connection

from devtools.bench.common import bench_database, bench_fleet, raw_copy_timed, timed
from devtools.bench.workers import run_in_processes
from fleet.models import GPU, GpuSample, Node
from fleet.telemetry.exposition import parse_exposition
from fleet.telemetry.poll import PollReport, readings_store
from fleet.telemetry.storage import partitions_ensure

TARGET_SAMPLES_PER_S = 100_000
# The metrics a default dcgm-exporter serves for each GPU (13 series per GPU, as in the real capture).
DCGM_FIELDS = (
    ("DCGM_FI_DEV_SM_CLOCK", "gauge"),
    ("DCGM_FI_DEV_MEM_CLOCK", "gauge"),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge"),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge"),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter"),
    ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter"),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge"),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge"),
    ("DCGM_FI_DEV_XID_ERRORS", "gauge"),
    ("DCGM_FI_DEV_FB_FREE", "gauge"),
    ("DCGM_FI_DEV_FB_USED", "gauge"),
    ("DCGM_FI_DEV_POWER_MGMT_LIMIT", "gauge"),
    ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "counter"),
)


def dcgm_text(node: Node, gpus: list[GPU], rng: random.Random) -> str:
    """What a dcgm-exporter on ``node`` would serve: HELP/TYPE lines and 13 series per GPU."""
    lines = []
    values = [(rng.randrange(0, 101), rng.uniform(60, 700), rng.randrange(30, 85)) for _ in gpus]
    for name, kind in DCGM_FIELDS:
        lines.append(f"# HELP {name} {name}.")
        lines.append(f"# TYPE {name} {kind}")
        for gpu, (util, power, temp) in zip(gpus, values, strict=True):
            value = {
                "DCGM_FI_DEV_GPU_UTIL": util,
                "DCGM_FI_DEV_POWER_USAGE": f"{power:.3f}",
                "DCGM_FI_DEV_GPU_TEMP": temp,
                "DCGM_FI_DEV_FB_USED": util * 800,
                "DCGM_FI_DEV_FB_FREE": 81920 - util * 800,
            }.get(name, 0)
            lines.append(
                f'{name}{{gpu="{gpu.index}",UUID="{gpu.uuid}",device="nvidia{gpu.index}",'
                f'modelName="{gpu.model}",Hostname="{node.name}",DCGM_FI_DRIVER_VERSION="550.54.15"}} {value}'
            )
    return "\n".join(lines) + "\n"


def _preload(gpu_ids: list[int], rows: int, before: datetime) -> int:
    """Fill the sample table with ``rows`` older samples (SQL-generated), as a fleet running for days would."""
    per_gpu = max(1, rows // len(gpu_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO fleet_gpu_sample (ts, gpu_id, power_w, mem_used_mib, util_pct, temp_c, sm_clock_mhz)
            SELECT %(before)s::timestamptz - make_interval(secs => 15 * s), g, 300 + (s %% 400), 1000,
                   (s %% 100)::smallint, 60, 1980
            FROM unnest(%(ids)s::bigint[]) AS g, generate_series(1, %(per_gpu)s) AS s
            """,
            {"before": before, "ids": gpu_ids, "per_gpu": per_gpu},
        )
        cursor.execute("ANALYZE fleet_gpu_sample")
        return per_gpu * len(gpu_ids)


_PRODUCT = None


def _product_job(item: tuple) -> int:
    node_slice, slot_offset = item
    return _PRODUCT(node_slice, slot_offset)


def run(
    *, nodes: int = 1250, gpus_per_node: int = 8, slots: int = 10, existing_rows: int = 3_000_000, orm_slots: int = 2
) -> dict:
    """Time the three paths on the same data shape; return the figures."""
    with bench_database():
        fleet = bench_fleet(nodes=nodes, gpus_per_node=gpus_per_node, telemetry_url="http://bench/{name}/metrics")
        gpu_ids = [g.pk for _, gpus in fleet for g in gpus]
        now = datetime(2026, 1, 15, 12, tzinfo=UTC)
        for day in range(-3, 3):
            partitions_ensure(now=now + timedelta(days=day), days_ahead=0)
        existing = _preload(gpu_ids, existing_rows, before=now - timedelta(hours=1))
        rng = random.Random(7)  # noqa: S311 - reproducible benchmark data

        # Product path: parse each node's scrape, match GPUs, COPY via staging with conflict handling.
        texts = [[dcgm_text(node, gpus, rng) for node, gpus in fleet] for _ in range(slots)]
        node_ids = [node.pk for node, _ in fleet]

        def product_slots(node_slice: slice, slot_offset: int) -> int:
            """Parse and store ``node_slice`` of every slot's scrapes (one worker's nodes, as a shard's)."""
            added = 0
            for slot, slot_texts in enumerate(texts):
                report = PollReport(slot=now + timedelta(seconds=15 * (slot + slot_offset)))
                readings = {
                    pk: list(parse_exposition(text).readings.values())
                    for pk, text in zip(node_ids[node_slice], slot_texts[node_slice], strict=True)
                }
                readings_store(readings, report)
                added += report.samples_added
            return added

        # One process (the path of one shard task), then the same work split over this machine's processes.
        product_s, product_rows = timed(lambda: product_slots(slice(None), 0))
        workers = max(2, os.cpu_count() or 1)
        per = -(-len(node_ids) // workers)
        items = [(slice(i * per, (i + 1) * per), slots) for i in range(workers)]
        global _PRODUCT  # noqa: PLW0603 - what the forked workers call
        _PRODUCT = product_slots
        parallel_s, figures = run_in_processes(_product_job, items, workers)
        parallel_rows = sum(sum(f.results) for f in figures)
        per_process = [sum(f.results) / f.busy_s for f in figures if f.busy_s]

        # Baseline 1: a raw COPY of the same number of rows straight into the table (no parsing, no checks).
        copy_s, copy_rows = raw_copy_timed(gpu_ids=gpu_ids, start=now + timedelta(minutes=30), slots=slots)

        # Baseline 2: the naive ORM path: parse, then bulk_create model instances (fewer slots: it is slow).
        orm_texts = texts[:orm_slots]
        uuid_to_id = {g.uuid: g.pk for _, gpus in fleet for g in gpus}

        def orm() -> int:
            created = 0
            for slot, slot_texts in enumerate(orm_texts):
                ts = now + timedelta(hours=1, seconds=15 * slot)
                objs = [
                    GpuSample(
                        gpu_id=uuid_to_id[r.uuid],
                        ts=ts,
                        power_w=r.power_w,
                        mem_used_mib=r.mem_used_mib,
                        util_pct=r.util_pct,
                        temp_c=r.temp_c,
                        sm_clock_mhz=r.sm_clock_mhz,
                    )
                    for text in slot_texts
                    for r in parse_exposition(text).readings.values()
                ]
                created += len(GpuSample.objects.bulk_create(objs, batch_size=1000))
            return created

        orm_s, orm_rows = timed(orm)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM fleet_gpu_sample")
            final_rows = cursor.fetchone()[0]
    single_rate = product_rows / product_s
    product_rate = parallel_rows / parallel_s
    return {
        "bench": "ingest",
        "gpus": len(gpu_ids),
        "existing_rows": existing,
        "final_rows": final_rows,
        "samples": parallel_rows,
        "processes": workers,
        "product_samples_per_s": round(product_rate),
        "product_1_process_samples_per_s": round(single_rate),
        "product_per_process_samples_per_s": [round(rate) for rate in per_process],
        "raw_copy_samples_per_s": round(copy_rows / copy_s),
        "orm_bulk_create_samples_per_s": round(orm_rows / orm_s),
        "product_vs_raw_copy": round(product_rate / (copy_rows / copy_s), 3),
        "product_vs_orm": round(product_rate / (orm_rows / orm_s), 2),
        "speedup_1_to_n_processes": round(product_rate / single_rate, 2),
        "target_samples_per_s": TARGET_SAMPLES_PER_S,
        "meets_target": product_rate >= TARGET_SAMPLES_PER_S,
    }


def run_scaled(scale: float) -> dict:
    """``run`` with the data size multiplied by ``scale`` (1.0: 10,000 GPUs, 3 M existing rows)."""
    return run(nodes=max(1, round(1250 * scale)), existing_rows=round(3_000_000 * scale))
