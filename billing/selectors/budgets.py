"""Reads of budgets: the budgets in a team scope, their month-to-date spend, forecast and state, and the sum of
the budgets a scope has."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from django.db.models import Q, QuerySet, Sum

from billing.models import Budget
from billing.selectors.periods import month_forecast_usd, month_period, month_start_of, utc_today
from billing.selectors.spend import ZERO, ledger_day_rows


@dataclass(frozen=True)
class BudgetStatus:
    """Where one budget stands in one month: spend so far, the month-end forecast and the thresholds passed.

    ``state``: "over" once spend reaches the budget, else "forecast-over" when the forecast passes it, else
    "warning" once a threshold is crossed, else "ok".
    """

    budget: Budget
    month: date
    spend_usd: Decimal
    forecast_usd: Decimal
    pct: Decimal
    forecast_pct: Decimal
    state: str
    thresholds_crossed: list[int] = field(default_factory=list)

    @property
    def label(self) -> str:
        """What the budget is for: the project (team/project) or the team."""
        return str(self.budget.project) if self.budget.project_id else str(self.budget.team)


def budget_list(*, teams: list[int] | None = None) -> QuerySet[Budget]:
    """Budgets in the team scope: team budgets of those teams and project budgets of their projects."""
    budgets = Budget.objects.for_teams(teams).select_related("team", "project__team")
    return budgets.order_by("team__name", "project__team__name", "project__name", "pk")


def percent_of(part: Decimal, whole: Decimal) -> Decimal:
    return (part * 100 / whole).quantize(Decimal("0.1")) if whole else ZERO


def budget_status(*, budget: Budget, spend_usd: Decimal, month: date, today: date | datetime) -> BudgetStatus:
    """The status of one budget given its month-to-date spend."""
    forecast = month_forecast_usd(month_start=month, spent_usd=spend_usd, today=today)
    crossed = [t for t in sorted(budget.thresholds_pct or []) if spend_usd * 100 >= budget.monthly_usd * t]
    if spend_usd >= budget.monthly_usd:
        state = "over"
    elif forecast > budget.monthly_usd:
        state = "forecast-over"
    elif crossed:
        state = "warning"
    else:
        state = "ok"
    return BudgetStatus(
        budget=budget,
        month=month_start_of(month),
        spend_usd=spend_usd,
        forecast_usd=forecast,
        pct=percent_of(spend_usd, budget.monthly_usd),
        forecast_pct=percent_of(forecast, budget.monthly_usd),
        state=state,
        thresholds_crossed=crossed,
    )


def budget_spend(
    *, budgets: list[Budget], start: date, end: date, teams: list[int] | None = None
) -> dict[int, Decimal]:
    """Spend of ``[start, end)`` per budget id: team budgets sum their team's rows, project budgets their
    project's (two queries whatever the number of budgets)."""
    team_ids = [b.team_id for b in budgets if b.team_id]
    project_ids = [b.project_id for b in budgets if b.project_id]
    rows = ledger_day_rows(start=start, end=end, teams=teams)
    by_team = dict(rows.filter(team_id__in=team_ids).values_list("team_id").annotate(s=Sum("total_usd")))
    by_project = dict(rows.filter(project_id__in=project_ids).values_list("project_id").annotate(s=Sum("total_usd")))
    return {b.pk: (by_team.get(b.team_id) if b.team_id else by_project.get(b.project_id)) or ZERO for b in budgets}


def budget_status_list(
    *, month: date, teams: list[int] | None = None, today: date | datetime | None = None
) -> list[BudgetStatus]:
    """Every budget in the team scope with its spend in ``month`` (to date), forecast, % and state."""
    if teams is not None and not teams:
        return []
    start, end, today = month_period(month=month, today=today)
    budgets = list(budget_list(teams=teams))
    spend = budget_spend(budgets=budgets, start=start, end=end) if budgets else {}
    return [budget_status(budget=b, spend_usd=spend[b.pk], month=start, today=today) for b in budgets]


def budget_statuses(budgets: list[Budget]) -> dict[int, BudgetStatus]:
    """This month's status of each budget, in two queries whatever their number."""
    start, end, today = month_period(month=utc_today())
    spend = budget_spend(budgets=budgets, start=start, end=end)
    return {b.pk: budget_status(budget=b, spend_usd=spend[b.pk], month=start, today=today) for b in budgets}


def budget_total_usd(*, teams: list[int] | None = None) -> Decimal:
    """The sum of the monthly budgets in the team scope, each $ once: the team budgets, plus the project budgets
    of teams without a budget of their own (a team's budget already covers its projects' spend)."""
    if teams is not None and not teams:
        return ZERO
    budgeted_teams = Budget.objects.filter(team__isnull=False).values("team_id")
    counted = budget_list(teams=teams).filter(Q(team__isnull=False) | ~Q(project__team_id__in=budgeted_teams))
    return counted.order_by().aggregate(s=Sum("monthly_usd"))["s"] or ZERO
