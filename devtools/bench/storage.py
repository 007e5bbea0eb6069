"""Storage benchmark: bytes per GPU sample after roll-up and compaction, beside the raw sample table and a
conventional one-row-per-GPU-minute roll-up built from the same data in the same run. Target: ≤ 16 bytes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import connection

from devtools.bench.common import bench_database, bench_fleet, timed
from fleet.telemetry.storage import hour_rollup, partitions_ensure

TARGET_BYTES_PER_SAMPLE = 16
POLL_INTERVAL_S = 15


def _size(cursor, sql_relations: str) -> int:
    cursor.execute(f"SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c WHERE {sql_relations}")  # noqa: S608
    return int(cursor.fetchone()[0])


def run(*, gpus: int = 400, hours: int = 24) -> dict:
    start = datetime(2026, 1, 10, tzinfo=UTC)
    with bench_database():
        gpu_ids = [gpu.pk for _, node_gpus in bench_fleet(nodes=max(1, gpus // 8)) for gpu in node_gpus]
        for day in range(hours // 24 + 2):
            partitions_ensure(now=start + timedelta(days=day), days_ahead=0)
        with connection.cursor() as cursor:
            # A day of 15 s samples with realistic variation (utilisation cycles, power tracking it, noise).
            cursor.execute(
                """
                INSERT INTO fleet_gpu_sample (ts, gpu_id, power_w, mem_used_mib, util_pct, temp_c, sm_clock_mhz)
                SELECT %(start)s::timestamptz + make_interval(secs => 15 * s), g,
                       (80 + 6 * u + random() * 20)::real, (2000 + 700 * u)::real, u::smallint,
                       (35 + u * 0.4 + random() * 3)::smallint, (1200 + 7 * u)::smallint
                FROM unnest(%(ids)s::bigint[]) AS g, generate_series(0, %(n)s - 1) AS s,
                     LATERAL (SELECT (50 + 45 * sin(s / 240.0 + g) + random() * 5)::int AS u) AS v
                """,
                {"start": start, "ids": gpu_ids, "n": hours * 3600 // POLL_INTERVAL_S},
            )
            samples = cursor.rowcount
            raw_bytes = _size(cursor, "c.relname LIKE 'fleet_gpu_sample%%' AND c.relkind IN ('r', 'i')")
            rollup_s, rows = timed(lambda: hour_rollup(start=start, end=start + timedelta(hours=hours)))
            compact_bytes = _size(cursor, "c.relname = 'fleet_gpu_hour'")
            # Baseline: the conventional layout, one row per GPU per minute with the same aggregates.
            cursor.execute(
                """
                CREATE TABLE bench_gpu_minute AS
                SELECT gpu_id, date_trunc('minute', ts) AS minute, AVG(util_pct)::real AS util_avg,
                       MAX(util_pct) AS util_max, AVG(power_w)::real AS power_avg, MAX(power_w) AS power_max,
                       MAX(mem_used_mib) AS mem_max, MAX(temp_c) AS temp_max, COUNT(*)::smallint AS samples
                FROM fleet_gpu_sample GROUP BY 1, 2
                """
            )
            cursor.execute("ALTER TABLE bench_gpu_minute ADD PRIMARY KEY (gpu_id, minute)")
            minute_bytes = _size(cursor, "c.relname LIKE 'bench_gpu_minute%%'")
    return {
        "bench": "storage",
        "gpus": len(gpu_ids),
        "hours": hours,
        "samples": samples,
        "hour_rows": rows,
        "rollup_s": round(rollup_s, 2),
        "rollup_samples_per_s": round(samples / rollup_s),
        "compacted_bytes_per_sample": round(compact_bytes / samples, 2),
        "raw_bytes_per_sample": round(raw_bytes / samples, 1),
        "row_per_minute_bytes_per_sample": round(minute_bytes / samples, 1),
        "target_bytes_per_sample": TARGET_BYTES_PER_SAMPLE,
        "meets_target": compact_bytes / samples <= TARGET_BYTES_PER_SAMPLE,
    }


def run_scaled(scale: float) -> dict:
    """``run`` with the GPU count multiplied by ``scale`` (1.0: 400 GPUs × 24 h = 2.3 M samples)."""
    return run(gpus=max(8, round(400 * scale / 8) * 8))
