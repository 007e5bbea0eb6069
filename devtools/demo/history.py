"""The demo's telemetry history: 30 days of hourly roll-ups and the last 24 h of the fleet minute series.

The fleet simulator only produces telemetry from the moment the demo starts, so without a history the node charts
show nothing before it and the overview's "last 24 h" charts hold a few minutes. Both series here come from one
load model (DEMO_LOAD_SQL), set-based SQL over ``generate_series``:

* About one GPU in eight sits idle (0-3 %); a third of the other nodes train around the clock (84-98 %); the rest
  follow the working day: 12 % + 72 % × ``cycle``, ± 5 % of per-hour noise, where ``cycle`` is
  ½ − ½ cos(2π (h − 3) / 24) at UTC hour h: 0 at 03:00 UTC (the night trough), 1 at 15:00 UTC (European
  afternoon, American morning). Which GPU is idle and which node trains is a hash of its seeded UUID and name, so
  the history is the same for the same ``seed_demo --seed`` whatever ids the database gives.
* Power follows utilisation between 12 % and 97 % of the GPU's limit; energy is that power over the hour.
* The fleet minute series is the expectation of the same model per provider kind (idle GPUs average 1.5 %,
  training 91 %, the rest 12 % + 72 % × ``cycle`` at the minute), ± 1 % of per-minute noise, with power summed
  the same way: its hourly means agree with the hourly roll-ups' fleet averages, and so with the node charts.

Neither overwrites live data: both insert with ON CONFLICT DO NOTHING (the live roll-ups write with DO UPDATE, so
a minute or hour the simulator's telemetry reaches later replaces the synthetic one), the hourly roll-ups stop two
hours ago and the minute series before the current minute. Re-running (``seed_demo --if-empty`` on every
``make demo``) fills only what is missing, such as the hours the demo was stopped.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

from devtools.demo.fleet import DEMO_PROVIDERS

DEMO_TROUGH_UTC_H = 3  # the night trough of the daily cycle; the peak is twelve hours later
# The demo's GPUs with what the load model needs: provider kind, first hour with telemetry (the hour after the
# node's launch), class (0 idle, 1 training, 2 daily cycle), power limit (W), memory and a stable hash.
DEMO_GPUS_SQL = """
demo_gpus AS (
    SELECT g.id, p.kind, g.memory_mib, coalesce(g.power_limit_w, 300)::float AS w,
           hashtext(g.uuid)::bigint AS gpu_hash,
           date_trunc('hour', coalesce(n.launched_at, n.created)) + interval '1 hour' AS since,
           CASE WHEN hashtext(g.uuid) & 7 = 0 THEN 0 WHEN (hashtext(n.name) & 2147483647) %% 3 = 0 THEN 1
                ELSE 2 END AS cls
    FROM fleet_gpu g
    JOIN fleet_node n ON n.id = g.node_id
    JOIN fleet_site s ON s.id = n.site_id
    JOIN fleet_provider p ON p.id = s.provider_id
    WHERE p.name = ANY(%(providers)s) AND n.state = 'running'
)"""
DEMO_CYCLE_SQL = "(0.5 - 0.5 * cos(2 * pi() * (extract(epoch FROM {t}) / 3600.0 - %(trough_h)s) / 24))"

DEMO_HISTORY_SQL = f"""
WITH {DEMO_GPUS_SQL},
hours AS MATERIALIZED (
    SELECT hour, extract(epoch FROM hour)::bigint AS epoch,
           {DEMO_CYCLE_SQL.format(t="hour + interval '30 minutes'")} AS c
    FROM generate_series(%(start)s::timestamptz, %(last)s::timestamptz, interval '1 hour') AS hour
)
INSERT INTO fleet_gpu_hour (hour, gpu_id, energy_wh, samples, idle_s, util_avg, util_max, power_avg_w, power_max_w,
                            mem_used_max_mib, temp_max_c, minutes, util_1m, power_1m_w, mem_1m_mib, temp_1m_c)
SELECT h.hour, d.id, u.power_w, 240, CASE WHEN u.util < 5 THEN 3600 ELSE 0 END, u.util, least(100, u.util + 8),
       u.power_w, least(d.w, u.power_w * 1.1), d.memory_mib * u.util / 100.0, 35 + u.util / 2.0,
       '{{}}', '{{}}', '{{}}', '{{}}', '{{}}'
FROM demo_gpus d
CROSS JOIN LATERAL (SELECT * FROM hours WHERE hours.hour >= d.since) h  -- GPU by GPU: the key's order
CROSS JOIN LATERAL (SELECT hashint8(d.gpu_hash * 7919 + h.epoch) & 2147483647 AS r) x
CROSS JOIN LATERAL (
    SELECT CASE d.cls WHEN 0 THEN x.r %% 4 WHEN 1 THEN 84 + x.r %% 15 ELSE 12 + 72 * h.c + x.r %% 11 - 5 END::float
           AS util
) u0
CROSS JOIN LATERAL (SELECT u0.util, d.w * (0.12 + 0.85 * u0.util / 100.0) AS power_w) u
ON CONFLICT (gpu_id, hour) DO NOTHING
"""  # noqa: S608 - composed of constants, never input

# Per provider kind and first minute: GPU count, the sum of the flat classes' mean utilisation (idle 1.5 %,
# training 91 %), the count following the cycle, and the same weighted by power limit.
DEMO_FLEET_MINUTE_SQL = f"""
WITH {DEMO_GPUS_SQL},
groups AS (
    SELECT kind, greatest(since, %(start)s::timestamptz) AS since, count(*) AS n,
           sum(CASE cls WHEN 0 THEN 1.5 WHEN 1 THEN 91 ELSE 0 END) AS flat,
           count(*) FILTER (WHERE cls = 2) AS n_cycle,
           sum(w) AS w, sum(w * CASE cls WHEN 0 THEN 1.5 WHEN 1 THEN 91 ELSE 0 END) AS w_flat,
           coalesce(sum(w) FILTER (WHERE cls = 2), 0) AS w_cycle
    FROM demo_gpus GROUP BY 1, 2
),
expected AS (
    SELECT m.minute, g.kind, sum(g.n) AS n, sum(g.flat + g.n_cycle * (12 + 72 * x.c)) / sum(g.n) AS util,
           sum(0.12 * g.w + 0.85 * (g.w_flat + g.w_cycle * (12 + 72 * x.c)) / 100.0) AS power_w, sum(g.w) AS w
    FROM generate_series(%(start)s::timestamptz, %(last)s::timestamptz, interval '1 minute') AS m(minute)
    CROSS JOIN LATERAL (SELECT {DEMO_CYCLE_SQL.format(t="m.minute")} AS c) x
    JOIN groups g ON g.since <= m.minute
    GROUP BY m.minute, g.kind
)
INSERT INTO fleet_fleet_minute (minute, provider_kind, gpus, util_avg, power_w)
SELECT e.minute, e.kind, e.n::int, greatest(0, e.util + j.d), greatest(0, e.power_w + 0.85 * e.w * j.d / 100.0)
FROM expected e
CROSS JOIN LATERAL (
    SELECT ((hashint8(extract(epoch FROM e.minute)::bigint / 60 + hashtext(e.kind)) & 2147483647) %% 21 - 10)
           / 10.0 AS d
) j
ON CONFLICT (minute, provider_kind) DO NOTHING
"""  # noqa: S608 - composed of constants, never input


def _params(**extra) -> dict:
    return {"providers": [p[0] for p in DEMO_PROVIDERS], "trough_h": DEMO_TROUGH_UTC_H, **extra}


def demo_telemetry_history_seed(*, days: int = 30, now: datetime | None = None) -> int:
    """Hourly roll-ups of the demo fleet's running GPUs for the last ``days`` days up to two hours ago (so the live
    roll-ups of the simulator's telemetry are never overwritten), following the daily load cycle of the module
    docstring; returns the rows written. Idempotent: existing hours are left as they are."""
    now = now or timezone.now()
    last = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    with connection.cursor() as cursor:
        cursor.execute(DEMO_HISTORY_SQL, _params(start=last - timedelta(days=days), last=last))
        return cursor.rowcount


def demo_fleet_minute_seed(*, hours: int = 24, now: datetime | None = None) -> int:
    """The fleet minute series (``fleet_fleet_minute``, the overview's charts) per provider kind for the last
    ``hours`` hours, up to the minute before ``now``'s, from the same load model as the hourly roll-ups; returns
    the rows written. Idempotent: minutes the live roll-up (or an earlier seed) wrote are left as they are."""
    now = now or timezone.now()
    current = now.replace(second=0, microsecond=0)
    with connection.cursor() as cursor:
        cursor.execute(
            DEMO_FLEET_MINUTE_SQL,
            _params(start=current - timedelta(hours=hours), last=current - timedelta(minutes=1)),
        )
        return cursor.rowcount
