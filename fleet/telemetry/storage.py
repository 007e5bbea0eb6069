"""Telemetry storage in PostgreSQL: batched COPY ingest, day partitions, roll-ups and retention.

Raw samples go to ``fleet_gpu_sample`` (partitioned by day, primary key (gpu_id, ts)); every hour they are
rolled up into ``fleet_gpu_hour`` (hourly aggregates plus the hour's 1-minute roll-ups as arrays), and every
minute into ``fleet_fleet_minute`` (per provider kind, for the overview). See migration 0004 for the tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction

STAGING_TABLE = "fleet_gpu_sample_staging"
# Columns of a sample row, in COPY order.
SAMPLE_COLUMNS = ("ts", "gpu_id", "power_w", "mem_used_mib", "util_pct", "temp_c", "sm_clock_mhz")
SMALLINT_MAX = 32767


@dataclass(frozen=True)
class Sample:
    """One GPU reading to store (values in dcgm-exporter units; None where not reported)."""

    gpu_id: int
    ts: datetime
    util_pct: float | None
    mem_used_mib: float | None
    power_w: float | None
    temp_c: float | None
    sm_clock_mhz: float | None


def samples_copy_text(samples: Iterable[Sample]) -> tuple[str, int]:
    r"""The samples as COPY text (tab-separated, \N for NULL) and how many there are."""
    out = []
    count = 0
    for s in samples:
        count += 1
        out.append(
            f"{s.ts.isoformat()}\t{s.gpu_id}\t{_real(s.power_w)}\t{_real(s.mem_used_mib)}\t"
            f"{_small(s.util_pct)}\t{_small(s.temp_c)}\t{_small(s.sm_clock_mhz)}\n"
        )
    return "".join(out), count


def _real(value: float | None) -> str:
    return "\\N" if value is None else repr(float(value))


def _small(value: float | None) -> str:
    # smallint columns: round, and keep values a broken exporter might send inside the column's range.
    if value is None:
        return "\\N"
    return str(max(-SMALLINT_MAX, min(SMALLINT_MAX, round(value))))


def samples_ingest(*, samples: Iterable[Sample]) -> int:
    """Store samples with one COPY; a (GPU, timestamp) already stored is kept, not duplicated. Returns rows added.

    COPY cannot skip conflicts, so rows are copied into a temporary staging table and moved over with
    ``INSERT … ON CONFLICT DO NOTHING``; a retried poll therefore stores nothing twice. Also updates each GPU's
    latest reading and idle state from the same staging rows.
    """
    text, count = samples_copy_text(samples)
    if not count:
        return 0
    columns = ", ".join(SAMPLE_COLUMNS)
    threshold = settings.IDLE_UTIL_THRESHOLD_PCT
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {STAGING_TABLE} "
            f"(LIKE fleet_gpu_sample INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        # Also emptied here, for callers that run several ingests inside one outer transaction.
        cursor.execute(f"TRUNCATE {STAGING_TABLE}")
        with cursor.copy(f"COPY {STAGING_TABLE} ({columns}) FROM STDIN") as copy:
            copy.write(text)
        cursor.execute(
            # DO NOTHING also skips a duplicate inside the batch itself, so no DISTINCT (and no sort) is needed.
            f"INSERT INTO fleet_gpu_sample ({columns}) SELECT {columns} FROM {STAGING_TABLE} ON CONFLICT DO NOTHING"
        )
        added = cursor.rowcount
        # The latest reading of each GPU in this batch, onto its row, without moving backwards in time. A poll
        # has one sample per GPU; should a batch hold several, PostgreSQL applies one of them, which is enough.
        cursor.execute(
            f"""
            UPDATE fleet_gpu AS g SET
                sampled_at = s.ts, util_pct = s.util_pct, mem_used_mib = s.mem_used_mib, power_w = s.power_w,
                temp_c = s.temp_c, sm_clock_mhz = s.sm_clock_mhz,
                idle_since = CASE WHEN s.util_pct IS NULL THEN g.idle_since
                                  WHEN s.util_pct < %s THEN COALESCE(g.idle_since, s.ts)
                                  ELSE NULL END
            FROM {STAGING_TABLE} AS s
            WHERE g.id = s.gpu_id AND (g.sampled_at IS NULL OR g.sampled_at <= s.ts)
            """,
            [threshold],
        )
    return added


def _day(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def partitions_ensure(*, now: datetime, days_ahead: int = 2) -> list[str]:
    """Create the raw-sample day partitions from today to ``days_ahead`` days on; return those created."""
    created = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'fleet_gpu_sample'"
        )
        existing = {row[0] for row in cursor.fetchall()}
        for offset in range(days_ahead + 1):
            start = _day(now) + timedelta(days=offset)
            name = f"fleet_gpu_sample_p{start:%Y%m%d}"
            if name in existing:
                continue
            with transaction.atomic():
                # Rows of that day caught by the default partition must move into the new one first.
                cursor.execute(
                    "CREATE TEMP TABLE fleet_gpu_sample_move AS "
                    "SELECT * FROM fleet_gpu_sample_default WHERE ts >= %s AND ts < %s",
                    [start, start + timedelta(days=1)],
                )
                cursor.execute(
                    "DELETE FROM fleet_gpu_sample_default WHERE ts >= %s AND ts < %s",
                    [start, start + timedelta(days=1)],
                )
                cursor.execute(
                    f"CREATE TABLE {name} PARTITION OF fleet_gpu_sample FOR VALUES FROM (%s) TO (%s)",
                    [start, start + timedelta(days=1)],
                )
                cursor.execute("INSERT INTO fleet_gpu_sample SELECT * FROM fleet_gpu_sample_move")
                cursor.execute("DROP TABLE fleet_gpu_sample_move")
            created.append(name)
    return created


def raw_retention_apply(*, now: datetime) -> int:
    """Drop day partitions (and default-partition rows) older than the raw retention; return partitions dropped."""
    cutoff = now - timedelta(hours=settings.TELEMETRY_RAW_RETENTION_H)
    dropped = 0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'fleet_gpu_sample' "
            "AND c.relname LIKE 'fleet_gpu_sample_p%%'"
        )
        for (name,) in cursor.fetchall():
            day_end = datetime.strptime(name.removeprefix("fleet_gpu_sample_p"), "%Y%m%d").replace(tzinfo=UTC)
            if day_end + timedelta(days=1) <= cutoff:
                cursor.execute(f"DROP TABLE {name}")
                dropped += 1
        cursor.execute("DELETE FROM fleet_gpu_sample_default WHERE ts < %s", [cutoff])
    return dropped


def hour_rollup(*, start: datetime, end: datetime) -> int:
    """(Re)compute ``fleet_gpu_hour`` for the whole hours in [start, end) from raw samples; return rows written.

    Idempotent: an hour computed again replaces its row. Energy integrates each minute's mean power over the
    minute; idle time counts minutes whose mean utilisation is under IDLE_UTIL_THRESHOLD_PCT.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO fleet_gpu_hour AS h (
                hour, gpu_id, energy_wh, samples, idle_s, util_avg, util_max, power_avg_w, power_max_w,
                mem_used_max_mib, temp_max_c, minutes, util_1m, power_1m_w, mem_1m_mib, temp_1m_c)
            SELECT date_trunc('hour', minute), gpu_id,
                   COALESCE(SUM(power_avg) / 60.0, 0), SUM(n)::int,
                   (60 * COUNT(*) FILTER (WHERE util_avg < %(idle)s))::int,
                   SUM(util_avg * n_util) / NULLIF(SUM(n_util), 0), MAX(util_max),
                   SUM(power_avg * n_power) / NULLIF(SUM(n_power), 0), MAX(power_max),
                   MAX(mem_max), MAX(temp_max),
                   array_agg(EXTRACT(minute FROM minute)::smallint ORDER BY minute),
                   array_agg(round(util_avg)::smallint ORDER BY minute),
                   array_agg(power_avg::real ORDER BY minute),
                   array_agg(mem_max ORDER BY minute),
                   array_agg(temp_max ORDER BY minute)
            FROM (
                SELECT gpu_id, date_trunc('minute', ts) AS minute, COUNT(*) AS n,
                       AVG(util_pct) AS util_avg, COUNT(util_pct) AS n_util, MAX(util_pct) AS util_max,
                       AVG(power_w) AS power_avg, COUNT(power_w) AS n_power, MAX(power_w) AS power_max,
                       MAX(mem_used_mib) AS mem_max, MAX(temp_c) AS temp_max
                FROM fleet_gpu_sample
                WHERE ts >= date_trunc('hour', %(start)s::timestamptz) AND ts < date_trunc('hour', %(end)s::timestamptz)
                GROUP BY gpu_id, date_trunc('minute', ts)
            ) AS m
            GROUP BY date_trunc('hour', minute), gpu_id
            ON CONFLICT (gpu_id, hour) DO UPDATE SET
                energy_wh = EXCLUDED.energy_wh, samples = EXCLUDED.samples, idle_s = EXCLUDED.idle_s,
                util_avg = EXCLUDED.util_avg, util_max = EXCLUDED.util_max, power_avg_w = EXCLUDED.power_avg_w,
                power_max_w = EXCLUDED.power_max_w, mem_used_max_mib = EXCLUDED.mem_used_max_mib,
                temp_max_c = EXCLUDED.temp_max_c, minutes = EXCLUDED.minutes, util_1m = EXCLUDED.util_1m,
                power_1m_w = EXCLUDED.power_1m_w, mem_1m_mib = EXCLUDED.mem_1m_mib, temp_1m_c = EXCLUDED.temp_1m_c
            """,
            {"start": start, "end": end, "idle": settings.IDLE_UTIL_THRESHOLD_PCT},
        )
        return cursor.rowcount


def fleet_minute_rollup(*, start: datetime, end: datetime) -> int:
    """(Re)compute ``fleet_fleet_minute`` for the whole minutes in [start, end); return rows written."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO fleet_fleet_minute AS f (minute, provider_kind, gpus, util_avg, power_w)
            SELECT per_gpu.minute, p.kind, COUNT(*), AVG(per_gpu.util), SUM(per_gpu.power)
            FROM (
                SELECT gpu_id, date_trunc('minute', ts) AS minute, AVG(util_pct) AS util, AVG(power_w) AS power
                FROM fleet_gpu_sample
                WHERE ts >= date_trunc('minute', %(start)s::timestamptz)
                  AND ts < date_trunc('minute', %(end)s::timestamptz)
                GROUP BY gpu_id, date_trunc('minute', ts)
            ) AS per_gpu
            JOIN fleet_gpu g ON g.id = per_gpu.gpu_id
            JOIN fleet_node n ON n.id = g.node_id
            JOIN fleet_site s ON s.id = n.site_id
            JOIN fleet_provider p ON p.id = s.provider_id
            GROUP BY per_gpu.minute, p.kind
            ON CONFLICT (minute, provider_kind) DO UPDATE SET
                gpus = EXCLUDED.gpus, util_avg = EXCLUDED.util_avg, power_w = EXCLUDED.power_w
            """,
            {"start": start, "end": end},
        )
        return cursor.rowcount


def rollup_retention_apply(*, now: datetime) -> int:
    """Delete hourly and fleet-minute roll-ups older than their retention; return rows deleted."""
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM fleet_gpu_hour WHERE hour < %s",
            [now - timedelta(days=settings.TELEMETRY_ROLLUP_RETENTION_DAYS)],
        )
        deleted = cursor.rowcount
        cursor.execute(
            "DELETE FROM fleet_fleet_minute WHERE minute < %s",
            [now - timedelta(days=settings.TELEMETRY_FLEET_MINUTE_RETENTION_DAYS)],
        )
        return deleted + cursor.rowcount
