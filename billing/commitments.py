"""Commitments in the ledger: reserved instances, savings plans and committed-use discounts, applied hour by hour.

``commitments_apply`` runs inside ``billing.ledger.ledger_compute``'s transaction, after the hours' ledger rows
are inserted and before the daily sums. It re-costs every cloud entry of the hours (whatever nodes were asked
for: who a commitment covers depends on every node of the hour), so it is idempotent:

1. **Reset**: every cloud entry goes back to its un-committed compute, ``rate_usd_per_h × active_s / 3600`` (the
   ledger's own formula: the rate is already rounded to 6 decimals), ``covered_usd = 0``, no commitment.
2. **Count basis** (reserved instances, resource-based CUDs), commitments by id: per hour, the first ``count``
   eligible, still uncovered node-hours by node id pay the commitment's ``rate_usd_per_h × active_s / 3600``.
3. **Spend basis** (savings plans, spend-based CUDs), by id, on what is left: per hour, in node-id order, the
   uncovered part of each eligible node-hour costs its on-demand value × (1 − ``discount_pct`` / 100) until the
   hour's ``hourly_commitment_usd`` is used up; the node-hour that straddles the limit is covered in part (the
   list value the rest of the commitment buys) and pays the remainder at on-demand.

Eligible: the commitment's provider account, its region (``site.region``) and instance type when set, an
on-demand or reserved node (never spot, never owned), priced. "On-demand" / "list" here is what the ledger
charges the node-hour without commitments (the on-demand price less the account's ``Discount``); a covered
entry's ``compute_usd`` is what it pays with them and ``covered_usd`` the part paid at a committed rate.
``idle_usd`` and ``broken_usd`` of re-costed rows follow compute (compute × idle or broken GPU-hours / GPU-hours).

Each commitment writes one ``CommitmentHour`` per hour of ``[start, end)`` it is in force (replaced on every
run): committed (count × rate, or the hourly commitment), used (what covered node-hours paid it), unused =
committed − used, the list value of the usage left to it (eligible) and of the part it covered. The hour in
progress is committed whole, so its unused part shrinks as the hour is recomputed; later hours (a backfill of
today) are not committed yet.

The unused part is spend on nothing, paid by the commitment's team: ``commitment_unused_days_refresh`` adds it
to the daily sums as ``LedgerDay`` rows without a site (``billing.ledger.ledger_days_refresh`` calls it).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Count, Sum
from django.db.models.functions import TruncDay, TruncMonth

from billing.choices import CommitmentBasis
from billing.models import Commitment, CommitmentHour
from fleet.catalog import GPU_SPECS
from fleet.choices import ProviderKind
from fleet.models import Provider

DAY = timedelta(days=1)

# Step 1. Only entries that differ from their un-committed figures are written (a fresh entry already is).
RESET_SQL = """
UPDATE billing_ledgerentry
SET compute_usd = rate_usd_per_h * active_s / 3600, covered_usd = 0, commitment_id = NULL,
    idle_usd = CASE WHEN gpu_hours > 0 THEN rate_usd_per_h * active_s / 3600 * idle_gpu_hours / gpu_hours ELSE 0 END,
    broken_usd = CASE WHEN gpu_hours > 0 THEN rate_usd_per_h * active_s / 3600 * broken_gpu_hours / gpu_hours
                      ELSE 0 END
WHERE hour >= %(start)s AND hour < %(end)s AND provider_kind <> 'onprem'
  AND (commitment_id IS NOT NULL OR covered_usd <> 0 OR compute_usd <> round(rate_usd_per_h * active_s / 3600, 6))
"""

HOURS_DELETE_SQL = "DELETE FROM billing_commitmenthour WHERE hour >= %(start)s AND hour < %(end)s"

# The entries one commitment may cover in [lo, hi) (e: the entry; its uncovered list value is compute − covered,
# since an uncovered part is charged at the list rate).
ELIGIBLE_WHERE = """
    e.hour >= %(lo)s AND e.hour < %(hi)s AND e.provider_id = %(provider_id)s AND e.provider_kind <> 'onprem'
    AND e.priced AND e.lifecycle IN ('on-demand', 'reserved')
    AND (%(region)s = '' OR s.region = %(region)s) AND (%(instance_type)s = '' OR n.instance_type = %(instance_type)s)
"""

# One statement per commitment: rank, cover, update the entries and write the commitment's hours.
HOURS_INSERT = """
INSERT INTO billing_commitmenthour (
    commitment_id, hour, committed_usd, used_usd, unused_usd, eligible_list_usd, covered_list_usd
)
SELECT %(id)s, h, %(committed)s, COALESCE(u.used, 0), GREATEST(%(committed)s - COALESCE(u.used, 0), 0),
       COALESCE(el.list_usd, 0), COALESCE(u.covered_list, 0)
FROM generate_series(%(lo)s::timestamptz, %(hi)s::timestamptz - interval '1 hour', interval '1 hour') h
LEFT JOIN (SELECT hour, sum(list_usd) AS list_usd FROM eligible GROUP BY hour) el ON el.hour = h
LEFT JOIN (SELECT hour, sum(paid) AS used, sum(covered_list) AS covered_list FROM covered GROUP BY hour) u
       ON u.hour = h
"""

ENTRY_UPDATE = """
updated AS (
    UPDATE billing_ledgerentry e
    SET compute_usd = e.compute_usd - c.covered_list + c.paid,
        covered_usd = e.covered_usd + c.paid,
        commitment_id = COALESCE(e.commitment_id, %(id)s),
        idle_usd = CASE WHEN e.gpu_hours > 0
                        THEN (e.compute_usd - c.covered_list + c.paid) * e.idle_gpu_hours / e.gpu_hours ELSE 0 END,
        broken_usd = CASE WHEN e.gpu_hours > 0
                          THEN (e.compute_usd - c.covered_list + c.paid) * e.broken_gpu_hours / e.gpu_hours ELSE 0 END
    FROM covered c
    WHERE e.id = c.id
)
"""

COUNT_APPLY_SQL = f"""
WITH eligible AS (
    SELECT e.id, e.hour, e.active_s, e.compute_usd AS list_usd,
           row_number() OVER (PARTITION BY e.hour ORDER BY e.node_id) AS position
    FROM billing_ledgerentry e
    JOIN fleet_site s ON s.id = e.site_id
    JOIN fleet_node n ON n.id = e.node_id
    WHERE {ELIGIBLE_WHERE} AND e.commitment_id IS NULL AND e.covered_usd = 0
),
covered AS (
    SELECT id, hour, list_usd AS covered_list, round(%(rate)s * active_s / 3600, 6) AS paid
    FROM eligible WHERE position <= %(count)s
),
{ENTRY_UPDATE}
{HOURS_INSERT}
"""  # noqa: S608 - composed of constants, never input

SPEND_APPLY_SQL = f"""
WITH eligible AS (
    SELECT x.*, sum(x.cost) OVER (PARTITION BY x.hour ORDER BY x.node_id ROWS UNBOUNDED PRECEDING) - x.cost AS before
    FROM (
        SELECT e.id, e.hour, e.node_id, e.compute_usd - e.covered_usd AS list_usd,
               round((e.compute_usd - e.covered_usd) * (100 - %(pct)s) / 100, 6) AS cost
        FROM billing_ledgerentry e
        JOIN fleet_site s ON s.id = e.site_id
        JOIN fleet_node n ON n.id = e.node_id
        WHERE {ELIGIBLE_WHERE} AND e.compute_usd > e.covered_usd
    ) x
),
paying AS (
    SELECT id, hour, list_usd, cost, LEAST(cost, %(committed)s - before) AS paid
    FROM eligible WHERE before < %(committed)s
),
covered AS (
    SELECT id, hour, paid,
           CASE WHEN paid = cost THEN list_usd ELSE LEAST(list_usd, round(paid * 100 / (100 - %(pct)s), 6)) END
               AS covered_list
    FROM paying
),
{ENTRY_UPDATE}
{HOURS_INSERT}
"""  # noqa: S608 - composed of constants, never input

# The unused part of the commitments on some days, summed per LedgerDay dimensions (site and project empty,
# lifecycle reserved, the GPU model the catalogue gives the instance type, as an NVML name like the ledger's).
UNUSED_DAY_DELETE_SQL = "DELETE FROM billing_ledgerday WHERE day = ANY(%(days)s::date[]) AND site_id IS NULL"

COMMITMENT_UNUSED_DAY_SQL = """
WITH dims AS (
    SELECT c.id, c.provider_id, p.kind AS provider_kind, c.team_id,
           COALESCE(names.nvml_name, ip.gpu_model, '') AS gpu_model
    FROM billing_commitment c
    JOIN fleet_provider p ON p.id = c.provider_id
    LEFT JOIN LATERAL (
        SELECT x.gpu_model FROM billing_instanceprice x
        WHERE c.instance_type <> '' AND x.provider_kind = p.kind AND x.instance_type = c.instance_type
          AND (c.region = '' OR x.region = c.region)
        ORDER BY x.effective_from DESC, x.id DESC
        LIMIT 1
    ) ip ON true
    LEFT JOIN unnest(%(gpu_keys)s::text[], %(gpu_names)s::text[]) AS names(gpu_key, nvml_name)
           ON names.gpu_key = ip.gpu_model
    WHERE c.start <= %(last_day)s AND c."end" > %(first_day)s
)
INSERT INTO billing_ledgerday (
    day, provider_id, provider_kind, site_id, team_id, project_id, gpu_model, lifecycle, nodes,
    compute_usd, energy_kwh, energy_usd, gpu_hours, idle_gpu_hours, idle_usd, co2e_kg, broken_gpu_hours,
    broken_usd, covered_usd, unused_commitment_usd, total_usd
)
SELECT (ch.hour AT TIME ZONE 'UTC')::date, d.provider_id, d.provider_kind, NULL, d.team_id, NULL, d.gpu_model,
       'reserved', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, sum(ch.unused_usd), sum(ch.unused_usd)
FROM billing_commitmenthour ch
JOIN dims d ON d.id = ch.commitment_id
WHERE ch.hour >= %(first)s AND ch.hour < %(last)s AND (ch.hour AT TIME ZONE 'UTC')::date = ANY(%(days)s::date[])
GROUP BY 1, d.provider_id, d.provider_kind, d.team_id, d.gpu_model
HAVING sum(ch.unused_usd) > 0
"""


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def commitments_in_force(*, start: datetime, end: datetime) -> list[Commitment]:
    """The cloud commitments in force in some hour of [start, end), in the order they apply: count basis
    first, then spend basis, by id within a basis."""
    found = (
        Commitment.objects.filter(start__lt=(end - timedelta(microseconds=1)).astimezone(UTC).date() + DAY)
        .filter(end__gt=start.astimezone(UTC).date())
        .exclude(provider__kind=ProviderKind.ONPREM)
    )
    order = {CommitmentBasis.COUNT: 0, CommitmentBasis.SPEND: 1}
    return sorted((c for c in found if c.basis in order), key=lambda c: (order[c.basis], c.pk))


def commitment_apply_params(commitment: Commitment, *, start: datetime, end: datetime) -> dict | None:
    """The SQL parameters of one commitment over the hours [start, end), or None when it covers none of them
    (or lacks the figures of its basis)."""
    lo, hi = max(start, _midnight(commitment.start)), min(end, _midnight(commitment.end))
    if hi <= lo:
        return None
    params = {
        "id": commitment.pk,
        "lo": lo,
        "hi": hi,
        "provider_id": commitment.provider_id,
        "region": commitment.region,
        "instance_type": commitment.instance_type,
    }
    if commitment.basis == CommitmentBasis.COUNT:
        if not commitment.count or commitment.rate_usd_per_h is None:
            return None
        return {
            **params,
            "count": commitment.count,
            "rate": commitment.rate_usd_per_h,
            "committed": commitment.count * commitment.rate_usd_per_h,
        }
    if commitment.hourly_commitment_usd is None or commitment.discount_pct is None or commitment.discount_pct >= 100:
        return None
    return {**params, "committed": commitment.hourly_commitment_usd, "pct": commitment.discount_pct}


def commitments_apply(cursor, *, start: datetime, end: datetime, now: datetime | None = None) -> int:
    """Re-apply every commitment to all the ledger entries of the hours [start, end); returns the
    ``CommitmentHour`` rows written. Runs on ``cursor`` inside the caller's transaction (``ledger_compute``).

    With ``now``, no hour after the one holding it is committed (a backfill of today computes up to now: the
    rest of the day is not spent yet); its ledger rows are still reset."""
    bounds = {"start": start, "end": end}
    cursor.execute(RESET_SQL, bounds)
    cursor.execute(HOURS_DELETE_SQL, bounds)
    if now is not None:
        floor = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        end = min(end, floor if floor == now else floor + timedelta(hours=1))
    written = 0
    for commitment in commitments_in_force(start=start, end=end):
        params = commitment_apply_params(commitment, start=start, end=end)
        if params is None:
            continue
        sql = COUNT_APPLY_SQL if commitment.basis == CommitmentBasis.COUNT else SPEND_APPLY_SQL
        cursor.execute(sql, params)
        written += cursor.rowcount
    return written


def commitment_unused_days_refresh(cursor, *, days: list[date]) -> int:
    """Replace the unused-commitment ``LedgerDay`` rows (site empty) of ``days`` with the sums of their
    ``CommitmentHour`` rows; returns the rows written. Call it after the days' other rows are rebuilt."""
    if not days:
        return 0
    params = {
        "days": list(days),
        "first_day": min(days),
        "last_day": max(days),
        "first": _midnight(min(days)),
        "last": _midnight(max(days) + DAY),
        "gpu_keys": list(GPU_SPECS),
        "gpu_names": [spec.nvml_name for spec in GPU_SPECS.values()],
    }
    cursor.execute(UNUSED_DAY_DELETE_SQL, params)
    cursor.execute(COMMITMENT_UNUSED_DAY_SQL, params)
    return cursor.rowcount


def commitment_save(*, commitment: Commitment) -> Commitment:
    """Validate (``Commitment.clean``: terms, overlap, catalogue) and save ``commitment``; returns it.

    The provider account's row is locked first, so two overlapping commitments saved at once cannot both pass
    the overlap check. The ledger of hours already computed is not re-costed here: run ``ledger_backfill`` over
    the commitment's past days (the next ledger run re-costs the recent hours by itself).
    """
    with transaction.atomic():
        Provider.objects.select_for_update().filter(pk=commitment.provider_id).first()
        commitment.full_clean()
        commitment.save()
    return commitment


USAGE_PERIODS = ("month", "day")
HOUR_FIELDS = ("committed_usd", "used_usd", "unused_usd", "eligible_list_usd", "covered_list_usd")


def _usage_figures(sums: dict) -> dict:
    figures = {name: sums.get(name) or Decimal(0) for name in HOUR_FIELDS}
    figures["uncovered_list_usd"] = figures["eligible_list_usd"] - figures["covered_list_usd"]
    figures["savings_usd"] = figures["covered_list_usd"] - figures["used_usd"]
    figures["net_savings_usd"] = figures["covered_list_usd"] - figures["committed_usd"]
    return figures


def commitment_usage(*, commitment: Commitment, start: date, end: date, by: str = "month") -> dict:
    """What ``commitment`` did on the UTC days [start, end), per month or day, and in total (a read).

    Per period: committed, used, unused, eligible list $ (the on-demand value of the usage left to it), covered
    list $, uncovered = eligible − covered, savings = covered list − used (what the covered usage would have
    cost without it, less what it paid) and net savings = covered list − committed (the unused part counted).
    Periods with no computed hour are left out.
    """
    if by not in USAGE_PERIODS:
        raise ValueError(f"by is one of {', '.join(USAGE_PERIODS)}.")
    trunc = TruncMonth if by == "month" else TruncDay
    hours = CommitmentHour.objects.filter(commitment=commitment, hour__gte=_midnight(start), hour__lt=_midnight(end))
    sums = {name: Sum(name) for name in HOUR_FIELDS}
    rows = (
        hours.annotate(period=trunc("hour", tzinfo=UTC))
        .values("period")
        .annotate(hours=Count("id"), **sums)
        .order_by("period")
    )
    periods = [{"period": row["period"].date(), "hours": row["hours"], **_usage_figures(row)} for row in rows]
    total = hours.aggregate(**sums)
    return {
        "by": by,
        "start": start,
        "end": end,
        "periods": periods,
        "total": {"hours": sum(p["hours"] for p in periods), **_usage_figures(total)},
    }
