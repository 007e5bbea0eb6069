"""The spend figures of the overview page: today and month to date against budget, egress, idle $, kgCO2e,
broken capacity $ and unused commitments $; and spend per hour by provider kind (the hourly ledger)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import DecimalField, Q, Sum, Value
from django.db.models.functions import Coalesce

from billing.models import LedgerEntry, LedgerShare
from billing.money import usd_cents
from billing.selectors.budgets import budget_total_usd, percent_of
from billing.selectors.periods import month_forecast_usd, month_start_of, utc_today
from billing.selectors.spend import SUMMED_FIELDS, ZERO, SpendTotals, egress_total_usd, ledger_day_rows, totals_of


@dataclass(frozen=True)
class SpendOverview:
    """The spend figures of the overview: today, month to date against budget, egress, idle $ per day; kgCO2e,
    broken capacity $ and unused commitments $ today and month to date (all within today's and the month's
    totals, as spend_totals gives them)."""

    today: date
    today_usd: Decimal
    month_to_date_usd: Decimal
    forecast_usd: Decimal
    budget_usd: Decimal
    budget_pct: Decimal
    egress_month_usd: Decimal
    idle_today_usd: Decimal
    idle_per_day_usd: Decimal
    co2e_today_kg: Decimal = ZERO
    co2e_month_kg: Decimal = ZERO
    broken_today_usd: Decimal = ZERO
    broken_month_usd: Decimal = ZERO
    unused_commitment_today_usd: Decimal = ZERO
    unused_commitment_month_usd: Decimal = ZERO


def _month_and_day_totals(
    *, month_start: date, today: date, teams: list[int] | None
) -> tuple[SpendTotals, SpendTotals]:
    """Month-to-date and today's totals in one query (the same sums spend_totals makes, today's filtered)."""
    if teams is not None and not teams:
        return SpendTotals(), SpendTotals()
    money = DecimalField(max_digits=20, decimal_places=6)
    today_only = Q(day=today)
    # Aliases differ from the column names: an aggregate named like a column hides it from the next one.
    sums = {f"month_{name}": Coalesce(Sum(name), Value(ZERO), output_field=money) for name in SUMMED_FIELDS}
    for name in SUMMED_FIELDS:
        sums[f"today_{name}"] = Coalesce(Sum(name, filter=today_only), Value(ZERO), output_field=money)
    row = ledger_day_rows(start=month_start, end=today + timedelta(days=1), teams=teams).aggregate(**sums)
    return tuple(totals_of({name: row[f"{part}_{name}"] for name in SUMMED_FIELDS}) for part in ("month", "today"))


def spend_overview(*, teams: list[int] | None = None, today: date | None = None) -> SpendOverview:
    """Today's and this month's spend in the team scope, against the sum of budgets; idle $ today and its
    month-to-date average per day; kgCO2e, broken capacity $ and unused commitments $ today and this month."""
    today = today or utc_today()
    month_start = month_start_of(today)
    tomorrow = today + timedelta(days=1)
    month, day = _month_and_day_totals(month_start=month_start, today=today, teams=teams)
    budget = budget_total_usd(teams=teams)
    elapsed_days = (today - month_start).days + 1
    return SpendOverview(
        today=today,
        today_usd=day.total_usd,
        month_to_date_usd=month.total_usd,
        forecast_usd=month_forecast_usd(month_start=month_start, spent_usd=month.total_usd, today=today),
        budget_usd=budget,
        budget_pct=percent_of(month.total_usd, budget),
        egress_month_usd=egress_total_usd(start=month_start, end=tomorrow, teams=teams),
        idle_today_usd=day.idle_usd,
        idle_per_day_usd=usd_cents(month.idle_usd / elapsed_days),
        co2e_today_kg=day.co2e_kg,
        co2e_month_kg=month.co2e_kg,
        broken_today_usd=day.broken_usd,
        broken_month_usd=month.broken_usd,
        unused_commitment_today_usd=day.unused_commitment_usd,
        unused_commitment_month_usd=month.unused_commitment_usd,
    )


# Compute + energy $ per hour and provider kind: an entry, or in its place its shares (a sliced node's hour split
# across teams, as the daily sums read it: billing.ledger.LEDGER_ROWS_SQL), so a team's hourly $ add up to its day.
HOURLY_BY_PROVIDER_SQL = f"""
SELECT e.hour, e.provider_kind,
       sum(CASE WHEN sh.id IS NULL THEN e.compute_usd + e.energy_usd ELSE sh.compute_usd + sh.energy_usd END)
FROM {LedgerEntry._meta.db_table} e
LEFT JOIN {LedgerShare._meta.db_table} sh ON sh.entry_id = e.id
WHERE e.hour >= %(start)s AND e.hour < %(end)s
  AND (%(teams)s::bigint[] IS NULL OR (CASE WHEN sh.id IS NULL THEN e.team_id ELSE sh.team_id END) = ANY(%(teams)s))
GROUP BY e.hour, e.provider_kind
"""  # noqa: S608 - table names from the models, values as parameters


def spend_by_provider_hourly(
    *, start: datetime, end: datetime, teams: list[int] | None = None
) -> dict[str, dict[datetime, Decimal]]:
    """Compute + energy $ of each ledger hour in ``[start, end)`` per provider kind, in the team scope:
    ``{provider_kind: {hour: usd}}`` (hours and kinds without ledger rows are absent). One query, however many
    providers or nodes.

    Read from the hourly ledger (LedgerEntry, a sliced node's hour by its LedgerShare rows), so the hours of a
    UTC day add up to that day's compute + energy $ in LedgerDay. Unused commitments are booked per day, not per
    hour, and are not in these figures. Rows without a team count only in the whole-fleet scope (``None``).
    """
    if teams is not None and not teams:
        return {}
    params = {"start": start, "end": end, "teams": None if teams is None else list(teams)}
    result: dict[str, dict[datetime, Decimal]] = {}
    with connection.cursor() as cursor:
        cursor.execute(HOURLY_BY_PROVIDER_SQL, params)
        for hour, kind, usd in cursor.fetchall():
            result.setdefault(kind, {})[hour] = usd or ZERO
    return result
