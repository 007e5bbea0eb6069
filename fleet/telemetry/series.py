"""Time series reads for charts and the API: per GPU, per node, and fleet-wide by provider.

Recent data (within TELEMETRY_RAW_RETENTION_H) comes from raw samples; older data, and recent hours with no raw
sample, from the hourly roll-ups' 1-minute arrays (or their hourly aggregates when the step is an hour or more;
a roll-up without minute arrays is one point at its hour's middle). Points are bucketed to the
requested step with ``date_bin``; buckets without data are absent, not zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

MIN_STEP_S = 15
MAX_POINTS = 5000
# Steps offered when a caller gives none: about 300 points per range.
NICE_STEPS_S = (15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)  # date_bin buckets align to it, so steps land on round times
# Times a range may name: no telemetry predates ORIGIN, and an end a day ahead of now covers clock skew; outside
# these, ``end - 24 h`` or the SQL's dates would overflow (year 1, year 9999).
EARLIEST = ORIGIN
FUTURE_SLACK = timedelta(days=1)


class SeriesRangeError(ValueError):
    """A requested range or step that cannot be served; ``field`` names the parameter at fault."""

    def __init__(self, message: str, *, field: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Window:
    """A validated time range and step."""

    start: datetime
    end: datetime
    step_s: int


def series_window(
    *, start: datetime | None, end: datetime | None, step_s: int | None, now: datetime | None = None
) -> Window:
    """Fill defaults (the last 24 h, about 300 points) and check the range; raises SeriesRangeError."""
    now = now or timezone.now()
    latest = now + FUTURE_SLACK
    for name, value in (("start", start), ("end", end)):
        if value is not None and not EARLIEST <= value <= latest:
            raise SeriesRangeError(
                f"{name} must be between {EARLIEST:%Y-%m-%d} and {latest:%Y-%m-%d %H:%M} UTC", field=name
            )
    end = end or now
    start = start or end - timedelta(hours=24)
    if start >= end:
        raise SeriesRangeError("start must be before end", field="start")
    span_s = (end - start).total_seconds()
    if step_s is None:
        step_s = next((s for s in NICE_STEPS_S if span_s / s <= 300), NICE_STEPS_S[-1])
    if step_s < MIN_STEP_S:
        raise SeriesRangeError(f"step must be at least {MIN_STEP_S} s (the poll interval)", field="step")
    if span_s / step_s > MAX_POINTS:
        raise SeriesRangeError(
            f"at most {MAX_POINTS} points: use a step of at least {int(span_s // MAX_POINTS) + 1} s", field="step"
        )
    return Window(start, end, step_s)


def _raw_cutoff(now: datetime) -> datetime:
    return now - timedelta(hours=settings.TELEMETRY_RAW_RETENTION_H)


# Points from the hourly roll-ups' 1-minute arrays; a roll-up without them (history imported or seeded by the
# hour) is one point at the middle of its hour, so charts of such history are not empty. {fallback} limits the
# hours read.
ROLLUP_POINTS_SQL = """
SELECT h.gpu_id, date_bin(%(step)s, x.t, %(origin)s) AS t, AVG(x.u), AVG(x.p), MAX(x.mem), MAX(x.temp)
FROM fleet_gpu_hour h
CROSS JOIN LATERAL (
    SELECT h.hour + make_interval(mins => m) AS t, u::real AS u, p, mem, temp::real AS temp
    FROM unnest(h.minutes, h.util_1m, h.power_1m_w, h.mem_1m_mib, h.temp_1m_c) AS m1(m, u, p, mem, temp)
    UNION ALL
    SELECT h.hour + interval '30 minutes', h.util_avg, h.power_avg_w, h.mem_used_max_mib, h.temp_max_c
    WHERE cardinality(h.minutes) = 0
) x
WHERE h.gpu_id = ANY(%(ids)s) AND h.hour >= date_trunc('hour', %(start)s::timestamptz) AND h.hour < %(end)s
  AND x.t >= %(start)s AND x.t < %(end)s {fallback}
GROUP BY 1, 2
"""
# Within raw retention, an hour of a GPU that has no raw sample (before its telemetry began: the demo's seeded
# history, an import) is read from its roll-up instead.
NO_RAW_IN_HOUR = """AND NOT EXISTS (
    SELECT 1 FROM fleet_gpu_sample s WHERE s.gpu_id = h.gpu_id AND s.ts >= h.hour AND s.ts < h.hour + interval '1 hour'
)"""


def gpu_series(*, gpu_ids: list[int], window: Window, now: datetime | None = None) -> dict[int, list[dict]]:
    """Per GPU: points {t, util_pct, power_w, mem_used_mib, temp_c} bucketed to the window's step.

    Raw samples within raw retention; before it the hourly roll-ups (their hourly aggregates for steps of an
    hour or more, else their 1-minute arrays); within it, roll-ups only for the hours a GPU has no raw sample."""
    now = now or timezone.now()
    cutoff = max(window.start, _raw_cutoff(now))
    step = timedelta(seconds=window.step_s)
    rows: list[tuple] = []
    params = {"step": step, "origin": ORIGIN, "ids": gpu_ids}
    with connection.cursor() as cursor:
        if window.start < cutoff:
            older_end = min(window.end, cutoff)
            if window.step_s >= 3600:
                cursor.execute(
                    """
                    SELECT gpu_id, date_bin(%(step)s, hour, %(origin)s) AS t, AVG(util_avg), AVG(power_avg_w),
                           MAX(mem_used_max_mib), MAX(temp_max_c)
                    FROM fleet_gpu_hour
                    WHERE gpu_id = ANY(%(ids)s) AND hour >= %(start)s AND hour < %(end)s
                    GROUP BY 1, 2
                    """,
                    {**params, "start": window.start, "end": older_end},
                )
            else:
                cursor.execute(
                    ROLLUP_POINTS_SQL.format(fallback=""), {**params, "start": window.start, "end": older_end}
                )
            rows += cursor.fetchall()
        if window.end > cutoff:
            cursor.execute(
                """
                SELECT gpu_id, date_bin(%(step)s, ts, %(origin)s) AS t, AVG(util_pct), AVG(power_w),
                       MAX(mem_used_mib), MAX(temp_c)
                FROM fleet_gpu_sample
                WHERE gpu_id = ANY(%(ids)s) AND ts >= %(start)s AND ts < %(end)s
                GROUP BY 1, 2
                """,
                {**params, "start": cutoff, "end": window.end},
            )
            rows += cursor.fetchall()
            cursor.execute(
                ROLLUP_POINTS_SQL.format(fallback=NO_RAW_IN_HOUR), {**params, "start": cutoff, "end": window.end}
            )
            rows += cursor.fetchall()
    series: dict[int, list[dict]] = {gpu_id: [] for gpu_id in gpu_ids}
    for gpu_id, t, util, power, mem, temp in sorted(rows, key=lambda r: (r[0], r[1])):
        series[gpu_id].append(
            {"t": t, "util_pct": _num(util), "power_w": _num(power), "mem_used_mib": _num(mem), "temp_c": _num(temp)}
        )
    return series


def fleet_series(*, window: Window) -> dict[str, list[dict]]:
    """Per provider kind: points {t, gpus, util_pct, power_w} from the fleet minute series."""
    step = timedelta(seconds=max(window.step_s, 60))
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT provider_kind, date_bin(%(step)s, minute, %(origin)s) AS t,
                   MAX(gpus), SUM(util_avg * gpus) / NULLIF(SUM(gpus), 0), AVG(power_w)
            FROM fleet_fleet_minute
            WHERE minute >= %(start)s AND minute < %(end)s
            GROUP BY 1, 2 ORDER BY 1, 2
            """,
            {"step": step, "origin": ORIGIN, "start": window.start, "end": window.end},
        )
        rows = cursor.fetchall()
    series: dict[str, list[dict]] = {}
    for kind, t, gpus, util, power in rows:
        series.setdefault(kind, []).append({"t": t, "gpus": gpus, "util_pct": _num(util), "power_w": _num(power)})
    return series


def _num(value) -> float | None:
    return None if value is None else round(float(value), 2)


def node_power_avg_w(*, node_ids: list[int], since: datetime) -> dict[int, float]:
    """Average measured power per GPU of each node since ``since``, from the hourly roll-ups (GPUs not lost);
    nodes without a measured hour are absent."""
    if not node_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT g.node_id, AVG(h.power_avg_w) FROM fleet_gpu_hour h JOIN fleet_gpu g ON g.id = h.gpu_id "
            "WHERE h.hour >= %s AND g.node_id = ANY(%s) AND NOT g.lost AND h.power_avg_w IS NOT NULL "
            "GROUP BY g.node_id",
            [since, list(node_ids)],
        )
        return {node_id: float(watts) for node_id, watts in cursor.fetchall()}
