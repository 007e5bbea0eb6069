"""Reads of spend for pages, the API, budgets and reports: every total of the product comes from here.

Spend is read from ``LedgerDay`` (the ledger summed per UTC day and dimension set), so the spend page, the
overview, budget alerts and email reports add up the same rows and agree to the cent. Periods are UTC days,
``start`` inclusive and ``end`` exclusive.

Unused commitments (reserved instances, savings plans and CUDs paid for and not used) are LedgerDay rows of their
own with no site (and the commitment's team, or none): they count in every total, and grouped by site they are
the "Unused commitments" row. ``teams`` scopes every read: a team scope (fleet.scoping.team_scope,
maybe narrowed by a filter's teams) applied with the models' ``for_teams``: ``None`` is the whole fleet, a list
of team ids limits to those teams (rows without a team are then left out), and ``[]`` is nothing at all.

The reads live in modules by role (periods, spend, budgets, overview); import them from here.
"""

from __future__ import annotations

from billing.selectors.budgets import (
    BudgetStatus,
    budget_list,
    budget_spend,
    budget_status,
    budget_status_list,
    budget_statuses,
    budget_total_usd,
    percent_of,
)
from billing.selectors.overview import SpendOverview, spend_by_provider_hourly, spend_overview
from billing.selectors.periods import (
    EARLIEST_DAY,
    LATEST_DAY,
    MAX_RANGE_DAYS,
    day_bounds,
    month_forecast_usd,
    month_period,
    month_start_of,
    next_month_start,
    period_errors,
    utc_today,
)
from billing.selectors.spend import (
    CENT,
    DIMENSION_COLUMNS,
    NONE_LABELS,
    SPEND_DIMENSIONS,
    SUMMED_FIELDS,
    UNASSIGNED,
    UNUSED_COMMITMENTS,
    ZERO,
    SpendTotals,
    egress_by_route,
    egress_record_rows,
    egress_total_usd,
    idle_cost_nodes,
    ledger_day_rows,
    reconciliation_by_provider,
    spend_breakdown,
    spend_by,
    spend_totals,
    summed_aggregates,
    totals_of,
)

__all__ = [
    "CENT",
    "DIMENSION_COLUMNS",
    "EARLIEST_DAY",
    "LATEST_DAY",
    "MAX_RANGE_DAYS",
    "NONE_LABELS",
    "SPEND_DIMENSIONS",
    "SUMMED_FIELDS",
    "UNASSIGNED",
    "UNUSED_COMMITMENTS",
    "ZERO",
    "BudgetStatus",
    "SpendOverview",
    "SpendTotals",
    "budget_list",
    "budget_spend",
    "budget_status",
    "budget_status_list",
    "budget_statuses",
    "budget_total_usd",
    "day_bounds",
    "egress_by_route",
    "egress_record_rows",
    "egress_total_usd",
    "idle_cost_nodes",
    "ledger_day_rows",
    "month_forecast_usd",
    "month_period",
    "month_start_of",
    "next_month_start",
    "percent_of",
    "period_errors",
    "reconciliation_by_provider",
    "spend_breakdown",
    "spend_by",
    "spend_by_provider_hourly",
    "spend_overview",
    "spend_totals",
    "summed_aggregates",
    "totals_of",
    "utc_today",
]
