"""The hourly cost ledger: what every node cost in every UTC hour, computed set-based in SQL.

``ledger_compute`` replaces the ledger rows (``LedgerEntry``) of a range of hours with one ``INSERT … SELECT``
per UTC day over nodes × the day's hours, and then rebuilds the daily sums (``LedgerDay``) of the days it
touched. Recomputing an hour replaces it, so the computation is idempotent and backfillable.

**Earlier runs are kept.** A node knows only its current run: when a stopped cloud instance starts again, sync
moves ``launched_at`` to the new start and clears ``ended_at``. So a recomputation never deletes (or overwrites)
a node's rows of hours that end at or before its current billing start (``coalesce(launched_at, created)``):
those hours belong to an earlier run. A stop/start keeps the earlier run's hours; a backfill over hours before
the current run only recomputes hours that have no row (and, the earlier runs being unknown, writes none there),
so a price corrected later does not reprice an earlier run's hours. The hour holding the current start is
recomputed from the current run.

Semantics (also in docs/billing.md):

- **Active seconds.** A node accrues cost for the seconds of the hour inside
  ``[coalesce(launched_at, created), coalesce(ended_at, now))``, never past ``now``. Cloud instances bill only
  then; owned on-prem hardware is amortised over the same window (it is owned until ``ended_at``, i.e.
  decommissioned). An hour with no active second has no row. The current hour is computed up to ``now`` and
  replaced when recomputed.
- **Prices are those in force on the hour's UTC day** (prices change only at day boundaries):
  the instance price of (provider kind, region, instance type) with the latest ``effective_from`` ≤ day, where
  an override row (the latest one) beats every other source, and on the same day the AWS Price List beats the
  shipped catalogue; of the provider account's discounts in force that day (``effective_from`` ≤ day ≤
  ``effective_to``) whose ``applies_to`` covers the node's purchase option (all; on-demand, which also covers
  reserved; spot), one applies: the most specific, then the latest-starting (as ``billing.rates.PriceBook``).
- **Cloud compute $** = instance $/h (spot price for spot nodes, on-demand price for on-demand and reserved
  nodes) × (1 − discount), rounded to 6 decimals as ``PriceBook.instance_usd_per_h`` does, × active_s / 3600.
  Energy is in the price: energy $ = 0.
- **On-prem compute $** = on-prem $/GPU-h × GPU count × active_s / 3600, where $/GPU-h = purchase per GPU /
  (amortisation months × 730 h) + operations per GPU-year / 8760 h, from the cost model in force that day: the
  node's own model, else the site's model for the node's GPU model (NVML name), else the site's model with an
  empty GPU model.
- **Energy kWh** = Σ GPU ``energy_wh`` / 1000 of the hour's telemetry roll-ups (``fleet_gpu_hour``) × PUE: the
  site's on-prem, the provider's published PUE in the cloud (``ProviderPue``; 1 without one); **energy $** = kWh
  × the site's $/kWh on-prem, 0 in the cloud (energy is in the price).
- **kgCO2e** = kWh × gCO2e/kWh / 1000, the intensity being the site's imported value for that hour
  (``GridIntensityHour``), else the site's operator value (``Site.carbon_g_per_kwh``), else the shipped value
  of the cloud region (``GridIntensity``); NULL with none (the daily sums count it as 0).
- **Broken capacity.** Broken GPU-hours = per GPU, the union of the hour's active seconds under its open XID,
  ECC double-bit or GPU-lost events (``occurred_at`` to ``resolved_at``, open ones to the end of the hour) / 3600,
  summed over the node's GPUs and capped at the GPU-hours; **broken $** = compute $ × broken / GPU-hours (part
  of compute $). Single-bit ECC errors are corrected by the GPU and do not count.
- **Commitments** (reserved instances, savings plans, CUDs) then re-cost the hours' cloud rows:
  ``billing.commitments`` (covered $, and the unused part as day rows of its own).
- **Sliced GPUs** (``GpuSlice``: MIG, time-slicing) split their node's rows into ``LedgerShare`` rows per team
  and project by slice size (``billing.shares``); the daily sums read those shares instead of the entry.
- **GPU-hours** = GPU count × active_s / 3600; **idle GPU-hours** = Σ roll-up ``idle_s`` / 3600, capped at
  the GPU-hours; **idle $** = compute $ × idle GPU-hours / GPU-hours.
- GPU count and model come from the node's GPU rows (the most common NVML name); team and project are copied
  from the node when the row is computed.
- **Unpriced.** A node with no price (or no cost model) still gets its rows, with ``priced = false`` and $0
  compute; ``LedgerReport.unpriced_nodes`` lists it and the Celery task logs a warning.
- **Rounding.** Every figure is computed with exact ``numeric`` arithmetic and stored with 6 decimals; only
  display rounds further. On-prem ``compute_usd`` is computed from the unrounded $/GPU-h, so it may differ
  from ``rate_usd_per_h × active_s / 3600`` in the sixth decimal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from billing.commitments import commitment_unused_days_refresh, commitments_apply
from billing.models import BilledCost, LedgerDay
from billing.shares import shares_delete, shares_insert

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
UNPRICED_LISTED_MAX = 200
LEDGER_LOCK_KEY = 0x46_44_4C_45_44_47  # "FDLEDG", pg_advisory_xact_lock key

# One UTC day of ledger rows for every node active in it. Parameters: day (date), start/end (the hours of the
# day to compute, timestamptz), now, node_ids (NULL: all). Prices and cost models are looked up once per node
# (one day has one price; 730 h a month and 8760 h a year, as OnPremCostModel.usd_per_gpu_hour); the roll-ups
# are summed per node and hour with one grouped scan of the day's rows.
INSERT_DAY_SQL = """
WITH nodes AS (
    SELECT n.id AS node_id, n.site_id, n.team_id, n.project_id, n.lifecycle, s.provider_id,
           p.kind AS provider_kind,
           CASE WHEN p.kind = 'onprem' THEN COALESCE(s.pue, 1) ELSE COALESCE(pp.pue, 1) END AS pue,
           COALESCE(s.electricity_usd_per_kwh, 0) AS usd_per_kwh,
           COALESCE(s.carbon_g_per_kwh, gi.g_per_kwh) AS g_per_kwh,
           COALESCE(n.launched_at, n.created) AS start_at, LEAST(COALESCE(n.ended_at, %(now)s), %(now)s) AS end_at,
           COALESCE(g.gpu_count, 0) AS gpu_count, COALESCE(g.gpu_model, '') AS gpu_model,
           CASE
               WHEN p.kind = 'onprem' THEN cm.usd_per_gpu_h * COALESCE(g.gpu_count, 0)
               ELSE round((CASE WHEN n.lifecycle = 'spot' THEN ip.spot_usd_per_h ELSE ip.on_demand_usd_per_h END)
                          * (100 - COALESCE(d.percent, 0)) / 100, 6)
           END AS rate
    FROM fleet_node n
    JOIN fleet_site s ON s.id = n.site_id
    JOIN fleet_provider p ON p.id = s.provider_id
    LEFT JOIN billing_providerpue pp ON pp.provider_kind = p.kind
    LEFT JOIN billing_gridintensity gi ON gi.provider_kind = p.kind AND gi.region = s.region
    LEFT JOIN LATERAL (
        SELECT count(*) AS gpu_count, mode() WITHIN GROUP (ORDER BY gg.model) AS gpu_model
        FROM fleet_gpu gg WHERE gg.node_id = n.id
    ) g ON true
    LEFT JOIN LATERAL (
        SELECT x.on_demand_usd_per_h, x.spot_usd_per_h
        FROM billing_instanceprice x
        WHERE p.kind <> 'onprem' AND x.provider_kind = p.kind AND x.region = s.region
          AND x.instance_type = n.instance_type AND x.effective_from <= %(day)s
        ORDER BY (x.source = 'override') DESC, x.effective_from DESC, (x.source = 'aws-price-list') DESC, x.id DESC
        LIMIT 1
    ) ip ON true
    LEFT JOIN LATERAL (
        SELECT x.percent
        FROM billing_discount x
        WHERE p.kind <> 'onprem' AND x.provider_id = s.provider_id AND x.effective_from <= %(day)s
          AND (x.effective_to IS NULL OR x.effective_to >= %(day)s)
          AND x.applies_to IN ('all', CASE WHEN n.lifecycle = 'spot' THEN 'spot' ELSE 'on-demand' END)
        ORDER BY (x.applies_to <> 'all') DESC, x.effective_from DESC, x.id DESC
        LIMIT 1
    ) d ON true
    LEFT JOIN LATERAL (
        SELECT x.purchase_usd_per_gpu / (x.amortisation_months * 730)
               + x.ops_usd_per_gpu_year / 8760 AS usd_per_gpu_h
        FROM billing_onpremcostmodel x
        WHERE p.kind = 'onprem' AND x.effective_from <= %(day)s
          AND (x.node_id = n.id OR (x.site_id = n.site_id AND x.gpu_model IN (g.gpu_model, '')))
        ORDER BY (x.node_id IS NOT NULL) DESC, (x.gpu_model <> '') DESC, x.effective_from DESC, x.id DESC
        LIMIT 1
    ) cm ON true
    WHERE COALESCE(n.launched_at, n.created) < LEAST(%(end)s, %(now)s)
      AND COALESCE(n.ended_at, 'infinity') > %(start)s
      AND (%(node_ids)s::bigint[] IS NULL OR n.id = ANY(%(node_ids)s::bigint[]))
),
node_hours AS (
    SELECT nd.*, h AS hour,
           floor(extract(epoch FROM LEAST(h + interval '1 hour', nd.end_at) - GREATEST(h, nd.start_at)))::integer
               AS active_s
    FROM nodes nd
    CROSS JOIN generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 hour', interval '1 hour') h
    WHERE h < nd.end_at AND h + interval '1 hour' > nd.start_at
),
rollups AS (
    SELECT g.node_id, r.hour, sum(r.energy_wh)::numeric AS energy_wh, sum(r.idle_s) AS idle_s
    FROM fleet_gpu_hour r JOIN fleet_gpu g ON g.id = r.gpu_id
    WHERE r.hour >= %(start)s AND r.hour < %(end)s
      AND (%(node_ids)s::bigint[] IS NULL OR g.node_id = ANY(%(node_ids)s::bigint[]))
    GROUP BY g.node_id, r.hour
),
broken_spans AS (
    SELECT nh.node_id, nh.hour,
           range_agg(tstzrange(
               GREATEST(nh.hour, nh.start_at, e.occurred_at),
               LEAST(nh.hour + interval '1 hour', nh.end_at, COALESCE(e.resolved_at, 'infinity'))
           )) AS spans
    FROM node_hours nh
    JOIN fleet_healthevent e ON e.node_id = nh.node_id AND e.kind IN ('xid', 'ecc-dbe', 'gpu-lost')
         AND e.occurred_at < LEAST(nh.hour + interval '1 hour', nh.end_at)
         AND COALESCE(e.resolved_at, 'infinity') > GREATEST(nh.hour, nh.start_at)
    WHERE nh.active_s > 0
    GROUP BY nh.node_id, nh.hour, e.gpu_id
),
broken AS (
    SELECT b.node_id, b.hour, sum(extract(epoch FROM upper(span) - lower(span))) / 3600.0 AS broken_hours
    FROM broken_spans b CROSS JOIN LATERAL unnest(b.spans) AS span
    GROUP BY b.node_id, b.hour
),
costed AS (
    SELECT nh.*, nh.rate IS NOT NULL AS priced,
           COALESCE(nh.rate, 0) * nh.active_s / 3600 AS compute_usd,
           COALESCE(r.energy_wh, 0) / 1000 * nh.pue AS energy_kwh,
           COALESCE(gh.g_per_kwh, nh.g_per_kwh) AS intensity,
           nh.gpu_count * nh.active_s / 3600.0 AS gpu_hours,
           COALESCE(r.idle_s, 0) / 3600.0 AS idle_hours,
           COALESCE(b.broken_hours, 0) AS broken_hours
    FROM node_hours nh
    LEFT JOIN rollups r ON r.node_id = nh.node_id AND r.hour = nh.hour
    LEFT JOIN broken b ON b.node_id = nh.node_id AND b.hour = nh.hour
    LEFT JOIN billing_gridintensityhour gh ON gh.site_id = nh.site_id AND gh.hour = nh.hour
    WHERE nh.active_s > 0
)
INSERT INTO billing_ledgerentry (
    node_id, hour, provider_id, provider_kind, site_id, team_id, project_id, gpu_model, lifecycle, gpu_count,
    active_s, rate_usd_per_h, compute_usd, energy_kwh, energy_usd, gpu_hours, idle_gpu_hours, idle_usd, priced,
    co2e_kg, broken_gpu_hours, broken_usd, covered_usd
)
SELECT node_id, hour, provider_id, provider_kind, site_id, team_id, project_id, gpu_model, lifecycle, gpu_count,
       active_s, COALESCE(rate, 0), compute_usd, energy_kwh,
       CASE WHEN provider_kind = 'onprem' THEN energy_kwh * usd_per_kwh ELSE 0 END,
       gpu_hours, LEAST(idle_hours, gpu_hours),
       CASE WHEN gpu_hours > 0 THEN compute_usd * LEAST(idle_hours, gpu_hours) / gpu_hours ELSE 0 END,
       priced,
       energy_kwh * intensity / 1000,
       LEAST(broken_hours, gpu_hours),
       CASE WHEN gpu_hours > 0 THEN compute_usd * LEAST(broken_hours, gpu_hours) / gpu_hours ELSE 0 END,
       0
FROM costed
"""

# Rows of hours that end at or before the node's current billing start belong to an earlier run (a stopped and
# restarted cloud instance: sync moved launched_at to the new start), which the node no longer describes: they
# are kept, and the INSERT never writes such hours (it covers only hours overlapping the current run).
DELETE_SQL = """
DELETE FROM billing_ledgerentry e
USING fleet_node n
WHERE n.id = e.node_id AND e.hour >= %(start)s AND e.hour < %(end)s
  AND (%(node_ids)s::bigint[] IS NULL OR e.node_id = ANY(%(node_ids)s::bigint[]))
  AND e.hour + interval '1 hour' > COALESCE(n.launched_at, n.created)
"""

UNPRICED_SQL = """
SELECT DISTINCT e.node_id, n.name FROM billing_ledgerentry e JOIN fleet_node n ON n.id = e.node_id
WHERE e.hour >= %(start)s AND e.hour < %(end)s AND NOT e.priced
  AND (%(node_ids)s::bigint[] IS NULL OR e.node_id = ANY(%(node_ids)s::bigint[]))
ORDER BY e.node_id
"""

DAY_DELETE_SQL = "DELETE FROM billing_ledgerday WHERE day = ANY(%(days)s::date[])"

# The ledger's rows of some hours as the daily sums (and the FOCUS export) read them: an entry, or in its place its
# shares (sliced GPUs). Hours in [first, last), and of the UTC days ``days`` unless that is NULL.
LEDGER_ROWS_SQL = """
SELECT (e.hour AT TIME ZONE 'UTC')::date AS day, e.node_id, e.provider_id, e.provider_kind, e.site_id, e.gpu_model,
       e.lifecycle, e.commitment_id, e.gpu_count, e.rate_usd_per_h, e.priced,
       CASE WHEN sh.id IS NULL THEN e.team_id ELSE sh.team_id END AS team_id,
       CASE WHEN sh.id IS NULL THEN e.project_id ELSE sh.project_id END AS project_id,
       e.active_s * COALESCE(sh.fraction, 1) / 3600 AS hours,
       e.rate_usd_per_h * e.active_s * COALESCE(sh.fraction, 1) / 3600 AS uncommitted_usd,
       CASE WHEN sh.id IS NULL THEN e.compute_usd ELSE sh.compute_usd END AS compute_usd,
       CASE WHEN sh.id IS NULL THEN e.energy_kwh ELSE sh.energy_kwh END AS energy_kwh,
       CASE WHEN sh.id IS NULL THEN e.energy_usd ELSE sh.energy_usd END AS energy_usd,
       CASE WHEN sh.id IS NULL THEN e.gpu_hours ELSE sh.gpu_hours END AS gpu_hours,
       CASE WHEN sh.id IS NULL THEN e.idle_gpu_hours ELSE sh.idle_gpu_hours END AS idle_gpu_hours,
       CASE WHEN sh.id IS NULL THEN e.idle_usd ELSE sh.idle_usd END AS idle_usd,
       CASE WHEN sh.id IS NULL THEN e.co2e_kg ELSE sh.co2e_kg END AS co2e_kg,
       CASE WHEN sh.id IS NULL THEN e.broken_gpu_hours ELSE sh.broken_gpu_hours END AS broken_gpu_hours,
       CASE WHEN sh.id IS NULL THEN e.broken_usd ELSE sh.broken_usd END AS broken_usd,
       CASE WHEN sh.id IS NULL THEN e.covered_usd ELSE sh.covered_usd END AS covered_usd
FROM billing_ledgerentry e
LEFT JOIN billing_ledgershare sh ON sh.entry_id = e.id
WHERE e.hour >= %(first)s AND e.hour < %(last)s
  AND (%(days)s::date[] IS NULL OR (e.hour AT TIME ZONE 'UTC')::date = ANY(%(days)s::date[]))
"""

DAY_REFRESH_SQL = f"""
INSERT INTO billing_ledgerday (
    day, provider_id, provider_kind, site_id, team_id, project_id, gpu_model, lifecycle, nodes,
    compute_usd, energy_kwh, energy_usd, gpu_hours, idle_gpu_hours, idle_usd, co2e_kg, broken_gpu_hours,
    broken_usd, covered_usd, unused_commitment_usd, total_usd
)
SELECT day, provider_id, provider_kind, site_id, team_id, project_id, gpu_model, lifecycle, count(DISTINCT node_id),
       sum(compute_usd), sum(energy_kwh), sum(energy_usd), sum(gpu_hours), sum(idle_gpu_hours), sum(idle_usd),
       COALESCE(sum(co2e_kg), 0), sum(broken_gpu_hours), sum(broken_usd), sum(covered_usd), 0,
       sum(compute_usd + energy_usd)
FROM ({LEDGER_ROWS_SQL}) r
GROUP BY day, provider_id, provider_kind, site_id, team_id, project_id, gpu_model, lifecycle
"""  # noqa: S608 - composed of constants, never input

NODE_DAY_DELETE_SQL = "DELETE FROM billing_ledgernodeday WHERE day = ANY(%(days)s::date[])"

NODE_DAY_REFRESH_SQL = f"""
INSERT INTO billing_ledgernodeday (day, node_id, team_id, idle_usd, idle_gpu_hours, total_usd, co2e_kg, broken_usd)
SELECT day, node_id, team_id, sum(idle_usd), sum(idle_gpu_hours), sum(compute_usd + energy_usd),
       COALESCE(sum(co2e_kg), 0), sum(broken_usd)
FROM ({LEDGER_ROWS_SQL}) r
GROUP BY day, node_id, team_id
"""  # noqa: S608 - composed of constants, never input


@dataclass
class LedgerReport:
    """What one ``ledger_compute`` did: the hours it replaced, the rows it wrote, the nodes it could not price."""

    start: datetime
    end: datetime
    rows: int = 0
    days: list[date] = field(default_factory=list)
    day_rows: int = 0
    unpriced_nodes: list[tuple[int, str]] = field(default_factory=list)
    unpriced_count: int = 0

    @property
    def hours(self) -> int:
        return int((self.end - self.start) / HOUR)

    def as_dict(self) -> dict:
        """JSON-ready form (task results, the management command)."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "hours": self.hours,
            "rows": self.rows,
            "days": [day.isoformat() for day in self.days],
            "day_rows": self.day_rows,
            "unpriced_count": self.unpriced_count,
            "unpriced_nodes": [{"id": pk, "name": name} for pk, name in self.unpriced_nodes],
        }


def hour_floor(moment: datetime) -> datetime:
    """The start of the UTC hour holding ``moment``."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hour_ceil(moment: datetime) -> datetime:
    """The first UTC hour boundary at or after ``moment``."""
    floor = hour_floor(moment)
    return floor if floor == moment else floor + HOUR


def ledger_compute(
    *, start: datetime, end: datetime, node_ids: list[int] | None = None, now: datetime | None = None
) -> LedgerReport:
    """Replace the ledger rows of every UTC hour in [start, end) (widened to whole hours), then their days' sums.

    ``node_ids`` limits the recomputation to those nodes (the days' sums are still rebuilt whole). Everything
    happens in one transaction, one set-based statement per UTC day; see the module docstring for the rules.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware (UTC hours).")
    now = now or timezone.now()
    start, end = hour_floor(start), hour_ceil(end)
    report = LedgerReport(start=start, end=end)
    if end <= start:
        return report
    ids = None if node_ids is None else sorted({int(pk) for pk in node_ids})
    chunks = []
    cursor_day = start
    while cursor_day < end:
        day_end = min(datetime.combine(cursor_day.date() + DAY, time(), tzinfo=UTC), end)
        chunks.append((cursor_day, day_end))
        cursor_day = day_end
    with transaction.atomic(), connection.cursor() as cursor:
        # One computation at a time (beat's update and a backfill may cover the same hours): the second waits
        # for the first to commit, then replaces its rows, instead of colliding on (node, hour).
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LEDGER_LOCK_KEY])
        shares_delete(cursor, start=start, end=end)
        cursor.execute(DELETE_SQL, {"start": start, "end": end, "node_ids": ids})
        for chunk_start, chunk_end in chunks:
            params = {"day": chunk_start.date(), "start": chunk_start, "end": chunk_end, "now": now, "node_ids": ids}
            cursor.execute(INSERT_DAY_SQL, params)
            report.rows += cursor.rowcount
        commitments_apply(cursor, start=start, end=end, now=now)
        shares_insert(cursor, start=start, end=end)
        report.days = sorted({chunk_start.date() for chunk_start, _ in chunks})
        report.day_rows = ledger_days_refresh(days=report.days)
    _unpriced_fill(report, ids)
    return report


def _unpriced_fill(report: LedgerReport, ids: list[int] | None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(UNPRICED_SQL, {"start": report.start, "end": report.end, "node_ids": ids})
        unpriced = cursor.fetchall()
    report.unpriced_count = len(unpriced)
    report.unpriced_nodes = [(pk, name) for pk, name in unpriced[:UNPRICED_LISTED_MAX]]


def _rollup_refresh(*, delete_sql: str, refresh_sql: str, days: list[date]) -> int:
    """Replace one roll-up table's rows of ``days`` with sums of their ledger rows; returns the rows written."""
    if not days:
        return 0
    params = {
        "days": list(days),
        "first": datetime.combine(min(days), time(), tzinfo=UTC),
        "last": datetime.combine(max(days) + DAY, time(), tzinfo=UTC),
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(delete_sql, params)
        cursor.execute(refresh_sql, params)
        return cursor.rowcount


def ledger_days_refresh(*, days: list[date]) -> int:
    """Rebuild the ``LedgerDay`` (and per-node ``LedgerNodeDay``) sums of ``days`` from their ledger rows, and
    the rows of the commitments' unused parts (``billing.commitments``); returns the ``LedgerDay`` rows written."""
    with transaction.atomic():
        written = _rollup_refresh(delete_sql=DAY_DELETE_SQL, refresh_sql=DAY_REFRESH_SQL, days=days)
        with connection.cursor() as cursor:
            written += commitment_unused_days_refresh(cursor, days=days)
        ledger_node_days_refresh(days=days)
    return written


def ledger_node_days_refresh(*, days: list[date]) -> int:
    """Rebuild the per-node ``LedgerNodeDay`` sums of ``days`` from their ledger rows; returns the rows written."""
    return _rollup_refresh(delete_sql=NODE_DAY_DELETE_SQL, refresh_sql=NODE_DAY_REFRESH_SQL, days=days)


def ledger_backfill(
    *, start: date, end: date, node_ids: list[int] | None = None, now: datetime | None = None
) -> LedgerReport:
    """Recompute the ledger for the UTC days [start, end], one transaction per day; returns the summed report."""
    if end < start:
        raise ValueError("The backfill ends before it starts.")
    total = LedgerReport(
        start=datetime.combine(start, time(), tzinfo=UTC), end=datetime.combine(end + DAY, time(), tzinfo=UTC)
    )
    day = start
    while day <= end:
        report = ledger_compute(
            start=datetime.combine(day, time(), tzinfo=UTC),
            end=datetime.combine(day + DAY, time(), tzinfo=UTC),
            node_ids=node_ids,
            now=now,
        )
        total.rows += report.rows
        total.day_rows += report.day_rows
        total.days.extend(report.days)
        day += DAY
    _unpriced_fill(total, None if node_ids is None else sorted({int(pk) for pk in node_ids}))
    return total


def reconciliation_list(*, provider, start: date, end: date) -> list[dict]:
    """Estimated (ledger) vs billed (Cost Explorer or FOCUS) spend of one cloud account per UTC day of [start, end).

    ``estimated_usd`` is the account's LedgerDay total (covered hours at the committed rate, unused commitments
    included, as the cloud bills them); ``billed_usd`` what the cloud billed that day (None until imported);
    ``difference_usd`` = billed − estimated and ``difference_pct`` its share of the bill (None without one, or 0).
    """
    provider_id = getattr(provider, "pk", provider)  # a Provider or its primary key
    estimated = dict(
        LedgerDay.objects.filter(provider_id=provider_id, day__gte=start, day__lt=end)
        .values("day")
        .annotate(usd=Sum("total_usd"))
        .values_list("day", "usd")
    )
    billed = dict(
        BilledCost.objects.filter(provider_id=provider_id, day__gte=start, day__lt=end).values_list("day", "usd")
    )
    rows = []
    day = start
    while day < end:
        estimate = estimated.get(day, Decimal(0))
        bill = billed.get(day)
        difference = None if bill is None else bill - estimate
        pct = None if not bill else (difference * 100 / bill).quantize(Decimal("0.01"))
        rows.append(
            {
                "day": day,
                "estimated_usd": estimate,
                "billed_usd": bill,
                "difference_usd": difference,
                "difference_pct": pct,
            }
        )
        day += DAY
    return rows
