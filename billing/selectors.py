"""Reads of spend for pages, the API, budgets and reports: every total of the product comes from here.

Spend is read from ``LedgerDay`` (the ledger summed per UTC day and dimension set), so the spend page, the
overview, budget alerts and email reports add up the same rows and agree to the cent. Periods are UTC days,
``start`` inclusive and ``end`` exclusive. ``teams`` scopes every read: a team scope (fleet.scoping.team_scope,
maybe narrowed by a filter's teams) applied with the models' ``for_teams``: ``None`` is the whole fleet, a list
of team ids limits to those teams (rows without a team are then left out), and ``[]`` is nothing at all.
"""

from __future__ import annotations

import calendar
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import Count, DecimalField, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce

from billing.ledger import reconciliation_list
from billing.models import BilledCost, Budget, EgressRecord, LedgerDay, LedgerNodeDay
from billing.money import usd_cents
from fleet.catalog import gpu_key
from fleet.choices import NodeLifecycle, ProviderKind
from fleet.models import Node, Project, Provider, Site, Team

SPEND_DIMENSIONS = ("provider", "site", "team", "project", "gpu_model", "lifecycle", "day")
# The days a spend period may name (the page's form and the API check them with ``period_errors``): dates
# outside these years are typing mistakes, and the upper bound keeps "last day + 1" representable.
EARLIEST_DAY, LATEST_DAY = date(1970, 1, 1), date(2999, 12, 31)
MAX_RANGE_DAYS = 400
ZERO = Decimal(0)
CENT = Decimal("0.01")
UNASSIGNED = "Unassigned"
SUMMED_FIELDS = ("compute_usd", "energy_usd", "total_usd", "idle_usd", "energy_kwh", "gpu_hours", "idle_gpu_hours")
# The LedgerDay column each dimension groups by.
DIMENSION_COLUMNS = {
    "provider": "provider_id",
    "site": "site_id",
    "team": "team_id",
    "project": "project_id",
    "gpu_model": "gpu_model",
    "lifecycle": "lifecycle",
    "day": "day",
}


@dataclass(frozen=True)
class SpendTotals:
    """What a set of ledger rows adds up to; total = compute + energy, idle $ is the part of compute paid idle."""

    compute_usd: Decimal = ZERO
    energy_usd: Decimal = ZERO
    total_usd: Decimal = ZERO
    idle_usd: Decimal = ZERO
    energy_kwh: Decimal = ZERO
    gpu_hours: Decimal = ZERO
    idle_gpu_hours: Decimal = ZERO

    def as_dict(self) -> dict[str, Decimal]:
        """The figures as a plain dict (for JSON, CSV and templates)."""
        return asdict(self)


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


def utc_today() -> date:
    """Today's UTC date: ledger days are UTC days."""
    return datetime.now(UTC).date()


def month_start_of(day: date) -> date:
    """The first day of ``day``'s month."""
    return day.replace(day=1)


def next_month_start(day: date) -> date:
    """The first day of the month after ``day``'s."""
    days = calendar.monthrange(day.year, day.month)[1]
    return month_start_of(day) + timedelta(days=days)


def period_errors(*, start: date, last: date) -> dict[str, str]:
    """What is wrong with a spend period from ``start`` to ``last`` (both inclusive): {"from"|"to": message},
    empty when it is fine. The one check of the spend page's filter form and the spend API."""
    errors = {}
    for name, value in (("from", start), ("to", last)):
        if not EARLIEST_DAY <= value <= LATEST_DAY:
            errors[name] = f"Give a day between {EARLIEST_DAY} and {LATEST_DAY}."
    if not errors and last < start:
        errors["to"] = "The end date is before the start date."
    elif not errors and (last - start).days + 1 > MAX_RANGE_DAYS:
        errors["to"] = f"Choose at most {MAX_RANGE_DAYS} days."
    return errors


def ledger_day_rows(*, start: date, end: date, teams: list[int] | None = None) -> QuerySet[LedgerDay]:
    """LedgerDay rows of ``[start, end)`` in the team scope (unordered: for aggregation)."""
    return LedgerDay.objects.filter(day__gte=start, day__lt=end).for_teams(teams).order_by()


def _sums() -> dict:
    money = DecimalField(max_digits=20, decimal_places=6)
    return {name: Coalesce(Sum(name), Value(ZERO), output_field=money) for name in SUMMED_FIELDS}


def _totals(row: dict) -> SpendTotals:
    return SpendTotals(**{name: row.get(name) or ZERO for name in SUMMED_FIELDS})


def spend_totals(*, start: date, end: date, teams: list[int] | None = None) -> SpendTotals:
    """Compute, energy, total and idle $, kWh and GPU-hours of ``[start, end)`` in the team scope."""
    if teams is not None and not teams:
        return SpendTotals()
    return _totals(ledger_day_rows(start=start, end=end, teams=teams).aggregate(**_sums()))


def _labels(dimension: str, keys: list) -> dict:
    """Display labels of the group keys of one dimension (one query at most)."""
    ids = [k for k in keys if k is not None]
    if dimension == "provider":
        return {p.pk: p.name for p in Provider.objects.filter(pk__in=ids)}
    if dimension == "site":
        return {s.pk: s.name for s in Site.objects.filter(pk__in=ids)}
    if dimension == "team":
        return {t.pk: t.name for t in Team.objects.filter(pk__in=ids)}
    if dimension == "project":
        return {p.pk: str(p) for p in Project.objects.select_related("team").filter(pk__in=ids)}
    if dimension == "lifecycle":
        return dict(NodeLifecycle.choices)
    return {}


def spend_by(*, dimension: str, start: date, end: date, teams: list[int] | None = None) -> list[dict]:
    """Spend of ``[start, end)`` grouped by one of SPEND_DIMENSIONS: [{"key", "label", <SpendTotals fields>}].

    Sorted by total $ descending (then label); ``day`` is sorted by day ascending with every day of the
    period present (zeros where nothing was spent). ``gpu_model`` groups by catalogue key (H100), merging the
    NVML names that map to one model. Rows without a team or project have key None, label "Unassigned".
    """
    if dimension not in SPEND_DIMENSIONS:
        raise ValueError(f"Unknown spend dimension {dimension!r}; choose from {', '.join(SPEND_DIMENSIONS)}.")
    column = DIMENSION_COLUMNS[dimension]
    if teams is not None and not teams:
        grouped = []
    else:
        grouped = list(
            ledger_day_rows(start=start, end=end, teams=teams).values(column).annotate(**_sums()).order_by(column)
        )
    return _spend_rows(dimension=dimension, grouped=grouped, start=start, end=end)


def _spend_rows(*, dimension: str, grouped: list[dict], start: date, end: date) -> list[dict]:
    """Rows of one dimension from its grouped sums ({<column>: key, <summed fields>}), labelled and sorted."""
    column = DIMENSION_COLUMNS[dimension]
    if dimension == "day":
        by_day = {row["day"]: _totals(row) for row in grouped}
        days = [start + timedelta(days=i) for i in range(max(0, (end - start).days))]
        return [{"key": d, "label": d.isoformat(), **by_day.get(d, SpendTotals()).as_dict()} for d in days]
    if dimension == "gpu_model":
        merged: dict[str, dict] = {}
        for row in grouped:
            key = gpu_key(row[column]) if row[column] else ""
            into = merged.setdefault(key, dict.fromkeys(SUMMED_FIELDS, ZERO))
            for name in SUMMED_FIELDS:
                into[name] += row[name]
        rows = [{"key": key, "label": key or "Unknown", **sums} for key, sums in merged.items()]
    else:
        labels = _labels(dimension, [row[column] for row in grouped])
        rows = [
            {
                "key": row[column],
                "label": UNASSIGNED if row[column] is None else str(labels.get(row[column], row[column])),
                **_totals(row).as_dict(),
            }
            for row in grouped
        ]
    return sorted(rows, key=lambda r: (-r["total_usd"], r["label"]))


def spend_breakdown(
    *, dimensions: tuple[str, ...], start: date, end: date, teams: list[int] | None = None
) -> tuple[SpendTotals, dict[str, list[dict]]]:
    """The totals and the rows of several dimensions (as ``spend_by``) from one scan of the period's rows
    (GROUP BY GROUPING SETS): what a page with a table per dimension reads."""
    unknown = set(dimensions) - set(SPEND_DIMENSIONS)
    if unknown:
        raise ValueError(f"Unknown spend dimension(s) {sorted(unknown)}; choose from {', '.join(SPEND_DIMENSIONS)}.")
    grouped: dict[str, list[dict]] = {dim: [] for dim in dimensions}
    totals = SpendTotals()
    if teams is None or teams:
        columns = [DIMENSION_COLUMNS[dim] for dim in dimensions]
        sets = ", ".join([f"({c})" for c in columns] + ["()"])
        flags = ", ".join(f"GROUPING({c})" for c in columns) or "0"
        sums = ", ".join(f"COALESCE(SUM({name}), 0)" for name in SUMMED_FIELDS)
        where, params = "day >= %s AND day < %s", [start, end]
        if teams is not None:
            where += " AND team_id = ANY(%s)"  # LedgerDay.objects.for_teams(teams), in SQL
            params.append(list(teams))
        sql = (
            f"SELECT ARRAY[{flags}], {', '.join(columns) + ',' if columns else ''} {sums} "  # noqa: S608 - fixed names
            f"FROM {LedgerDay._meta.db_table} WHERE {where} GROUP BY GROUPING SETS ({sets})"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            for flags_row, *values in cursor.fetchall():
                keys, figures = values[: len(columns)], dict(zip(SUMMED_FIELDS, values[len(columns) :], strict=True))
                grouped_by = [dim for dim, flag in zip(dimensions, flags_row, strict=True) if flag == 0]
                if not grouped_by:
                    totals = _totals(figures)
                    continue
                dim = grouped_by[0]
                grouped[dim].append({DIMENSION_COLUMNS[dim]: keys[dimensions.index(dim)], **figures})
    return totals, {dim: _spend_rows(dimension=dim, grouped=grouped[dim], start=start, end=end) for dim in dimensions}


def day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """The UTC midnights that open the days ``start`` and ``end`` (aware datetimes)."""
    return datetime.combine(start, time.min, tzinfo=UTC), datetime.combine(end, time.min, tzinfo=UTC)


def egress_record_rows(*, start: date, end: date, teams: list[int] | None = None) -> QuerySet[EgressRecord]:
    """Egress records of data that moved in ``[start, end)`` in the team scope.

    Planned records (written by a placement before its data has moved) are not spend yet and are left out.
    """
    since, until = day_bounds(start, end)
    rows = EgressRecord.objects.filter(occurred_at__gte=since, occurred_at__lt=until, planned=False)
    return rows.for_teams(teams).order_by()


def egress_by_route(*, start: date, end: date, teams: list[int] | None = None) -> list[dict]:
    """Egress of ``[start, end)`` per route: [{"source", "destination", "bytes", "usd", "records"}], $ desc."""
    if teams is not None and not teams:
        return []
    rows = (
        egress_record_rows(start=start, end=end, teams=teams)
        .values("source", "destination")
        .annotate(bytes=Sum("bytes"), usd=Sum("usd"), records=Count("pk"))
        .order_by("-usd", "source", "destination")
    )
    return [{**row, "bytes": int(row["bytes"] or 0), "usd": row["usd"] or ZERO} for row in rows]


def egress_total_usd(*, start: date, end: date, teams: list[int] | None = None) -> Decimal:
    """Total egress $ of ``[start, end)`` in the team scope."""
    if teams is not None and not teams:
        return ZERO
    return egress_record_rows(start=start, end=end, teams=teams).aggregate(usd=Sum("usd"))["usd"] or ZERO


def month_forecast_usd(*, month_start: date, spent_usd: Decimal, today: date | datetime) -> Decimal:
    """The month-end spend if the month goes on at its run rate so far: spent / elapsed days × days in month.

    ``today`` as a date counts as a whole elapsed day (the ledger of today is partial, so early in a UTC day
    the forecast is a little low); as an aware datetime, today counts as the fraction of it elapsed. Before
    the month, the forecast is what was spent; after it, the month is over and the forecast is what was spent.
    """
    month_start = month_start_of(month_start)
    days_in_month = calendar.monthrange(month_start.year, month_start.month)[1]
    if isinstance(today, datetime):
        moment = today.astimezone(UTC)
        elapsed = Decimal((moment - datetime.combine(month_start, time.min, tzinfo=UTC)).total_seconds()) / 86400
    else:
        elapsed = Decimal((today - month_start).days + 1)
    if elapsed <= 0 or elapsed >= days_in_month:
        return spent_usd
    # A minute into the month the run rate means little; count at least one hour.
    elapsed = max(elapsed, Decimal(1) / 24)
    return (spent_usd / elapsed * days_in_month).quantize(Decimal("0.000001"))


def budget_list(*, teams: list[int] | None = None) -> QuerySet[Budget]:
    """Budgets in the team scope: team budgets of those teams and project budgets of their projects."""
    budgets = Budget.objects.for_teams(teams).select_related("team", "project__team")
    return budgets.order_by("team__name", "project__team__name", "project__name", "pk")


def _pct(part: Decimal, whole: Decimal) -> Decimal:
    return (part * 100 / whole).quantize(Decimal("0.1")) if whole else ZERO


def month_period(*, month: date, today: date | datetime | None = None) -> tuple[date, date, date | datetime]:
    """The month-to-date period of ``month`` as of ``today``: (start, end exclusive, the 'today' to forecast at)."""
    start = month_start_of(month)
    month_end = next_month_start(start)
    today = today or utc_today()
    today_date = today.date() if isinstance(today, datetime) else today
    end = min(month_end, max(start, today_date + timedelta(days=1)))
    return start, end, today


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
        pct=_pct(spend_usd, budget.monthly_usd),
        forecast_pct=_pct(forecast, budget.monthly_usd),
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


def idle_cost_nodes(*, start: date, end: date, teams: list[int] | None = None, limit: int = 10) -> list[dict]:
    """The nodes whose idle GPUs cost most in ``[start, end)``: node id/name/site/team, idle $ and GPU-hours.

    Reads LedgerNodeDay (per node-day sums of the ledger); a node's idle $ counts for, and is labelled with, the
    team it was booked to (a node that moved between teams in the range has a row per team).
    """
    if teams is not None and not teams:
        return []
    entries = LedgerNodeDay.objects.filter(day__gte=start, day__lt=end).for_teams(teams).order_by()
    top = list(
        entries.values("node_id", "team_id")
        .annotate(idle_usd=Sum("idle_usd"), idle_gpu_hours=Sum("idle_gpu_hours"))
        .filter(idle_usd__gt=0)
        .order_by("-idle_usd", "node_id", "team_id")[:limit]
    )
    nodes = Node.objects.select_related("site").in_bulk([row["node_id"] for row in top])
    team_names = dict(Team.objects.filter(pk__in={row["team_id"] for row in top}).values_list("pk", "name"))
    result = []
    for row in top:
        node = nodes.get(row["node_id"])
        result.append(
            {
                "node_id": row["node_id"],
                "name": node.name if node else f"#{row['node_id']}",
                "site": node.site.name if node else "",
                "team": team_names.get(row["team_id"], UNASSIGNED),
                "idle_usd": row["idle_usd"],
                "idle_gpu_hours": row["idle_gpu_hours"],
            }
        )
    return result


@dataclass(frozen=True)
class SpendOverview:
    """The spend figures of the overview: today, month to date against budget, egress, idle $ per day."""

    today: date
    today_usd: Decimal
    month_to_date_usd: Decimal
    forecast_usd: Decimal
    budget_usd: Decimal
    budget_pct: Decimal
    egress_month_usd: Decimal
    idle_today_usd: Decimal
    idle_per_day_usd: Decimal


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
    return tuple(_totals({name: row[f"{part}_{name}"] for name in SUMMED_FIELDS}) for part in ("month", "today"))


def spend_overview(*, teams: list[int] | None = None, today: date | None = None) -> SpendOverview:
    """Today's and this month's spend in the team scope, against the sum of budgets; idle $ today and its
    month-to-date average per day."""
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
        budget_pct=_pct(month.total_usd, budget),
        egress_month_usd=egress_total_usd(start=month_start, end=tomorrow, teams=teams),
        idle_today_usd=day.idle_usd,
        idle_per_day_usd=usd_cents(month.idle_usd / elapsed_days),
    )


def reconciliation_by_provider(*, start: date, end: date) -> list[dict]:
    """Estimated (ledger) against billed spend per day for each AWS account with billed cost in ``[start, end)``:
    [{"provider", "rows": billing.ledger.reconciliation_list(...)}]. Whole accounts, so not team-scoped."""
    providers = Provider.objects.filter(
        kind=ProviderKind.AWS,
        pk__in=BilledCost.objects.filter(day__gte=start, day__lt=end).values("provider_id"),
    ).order_by("name")
    return [
        {"provider": provider, "rows": reconciliation_list(provider=provider, start=start, end=end)}
        for provider in providers
    ]
