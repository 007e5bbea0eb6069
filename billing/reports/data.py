"""The figures of one cost report, read through billing.selectors so they equal the spend page's."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from billing import selectors
from billing.models import ReportSubscription
from billing.reports.periods import period_label
from fleet.models import Team

TOP_IDLE_NODES = 10
FLEET_SCOPE_LABEL = "Whole fleet"


@dataclass(frozen=True)
class ReportData:
    """Everything one report shows, for one scope (the fleet or a team) and one period ``[start, end)``."""

    scope_label: str
    teams: list[int] | None
    period_start: date
    period_end: date
    period_label: str
    totals: selectors.SpendTotals
    daily: list[dict]
    by_provider: list[dict]
    by_team: list[dict]
    by_gpu_model: list[dict]
    egress_routes: list[dict]
    egress_usd: Decimal
    budgets: list[selectors.BudgetStatus]
    budget_month: date
    idle_nodes: list[dict]
    subscription_name: str = ""
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def total_usd(self) -> Decimal:
        """The report's total: compute + energy + unused commitments of the period, as spend_totals gives it (egress
        apart)."""
        return self.totals.total_usd


def report_data(
    *,
    period_start: date,
    period_end: date,
    subscription: ReportSubscription | None = None,
    team: Team | None = None,
) -> ReportData:
    """The report of ``[period_start, period_end)`` for a subscription's scope, or for ``team`` (None: fleet)."""
    if period_end <= period_start:
        raise ValueError("A report period must end after it starts.")
    if subscription is not None:
        team = subscription.team
    teams = [team.pk] if team is not None else None
    span = {"start": period_start, "end": period_end, "teams": teams}
    last_day = period_end - timedelta(days=1)
    return ReportData(
        scope_label=team.name if team is not None else FLEET_SCOPE_LABEL,
        teams=teams,
        period_start=period_start,
        period_end=period_end,
        period_label=period_label(start=period_start, end=period_end),
        totals=selectors.spend_totals(**span),
        daily=selectors.spend_by(dimension="day", **span),
        by_provider=selectors.spend_by(dimension="provider", **span),
        by_team=selectors.spend_by(dimension="team", **span),
        by_gpu_model=selectors.spend_by(dimension="gpu_model", **span),
        egress_routes=selectors.egress_by_route(**span),
        egress_usd=selectors.egress_total_usd(**span),
        # Budgets are monthly: show the month the period ends in, as it stood on the period's last day.
        budgets=selectors.budget_status_list(month=last_day, teams=teams, today=last_day),
        budget_month=last_day.replace(day=1),
        idle_nodes=selectors.idle_cost_nodes(**span, limit=TOP_IDLE_NODES),
        subscription_name=subscription.name if subscription is not None else "",
    )
