"""The spend page: spend (with kgCO2e, broken capacity $ and unused commitments $) by provider, site, team,
project and GPU model, its daily trend, egress, budgets and reconciliation (from the daily roll-up, LedgerDay), for
a date range and teams, within the viewer's team scope; and its top idle-cost nodes panel, loaded after the page,
read from the per-node daily sums (LedgerNodeDay)."""

from __future__ import annotations

from datetime import date, timedelta

from django import forms
from django.conf import settings
from django.core.cache import cache
from django.shortcuts import render
from django.urls import path

from billing import selectors
from billing.money import usd_cents
from fleet.models import Team
from fleet.scoping import team_scope, teams_in_scope

MAX_RANGE_DAYS = selectors.MAX_RANGE_DAYS
# The top idle-cost nodes group the per-node daily sums (LedgerNodeDay: a row per node and day, ~30 per node a
# month), still the page's heaviest read on a large fleet, so the panel loads after the page and its answer is
# kept while the ledger is unchanged (it is recomputed every 5 minutes).
IDLE_NODES_CACHE_S = 300
TABLE_DIMENSIONS = (
    ("provider", "Provider"),
    ("site", "Site"),
    ("team", "Team"),
    ("project", "Project"),
    ("gpu_model", "GPU model"),
)


class SpendFilterForm(forms.Form):
    """Date range (both ends inclusive, default this month to today) and teams (within the viewer's scope)."""

    date_from = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    team = forms.ModelMultipleChoiceField(queryset=Team.objects.none(), required=False)

    def __init__(self, *args, scope: list[int] | None = None, today: date | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.today = today or selectors.utc_today()
        teams = Team.objects.order_by("name")
        self.fields["team"].queryset = teams if scope is None else teams.filter(pk__in=scope)

    def clean(self):
        cleaned = super().clean()
        start = cleaned.get("date_from") or selectors.month_start_of(self.today)
        end = cleaned.get("date_to") or max(self.today, start)
        if "date_from" in self.errors or "date_to" in self.errors:
            return cleaned
        # The API's check (the same bounds: a day like 9999-12-31 is refused before "end + 1 day" overflows).
        errors = selectors.period_errors(start=start, last=end)
        for name, message in errors.items():
            self.add_error("date_from" if name == "from" else "date_to", message)
        if not errors:
            cleaned["start"], cleaned["end"] = start, end + timedelta(days=1)
        return cleaned


def spend_page_data(*, start: date, end: date, teams: list[int] | None, today: date) -> dict:
    """Everything the spend page shows for ``[start, end)`` in the team scope ``teams``."""
    period = {"start": start, "end": end, "teams": teams}
    dimensions = tuple(dim for dim, _ in TABLE_DIMENSIONS) + ("day",)
    totals, by_dimension = selectors.spend_breakdown(dimensions=dimensions, **period)
    days = by_dimension["day"]
    routes = selectors.egress_by_route(**period)
    trend = {
        "labels": [row["label"] for row in days],
        "datasets": [
            {"label": "Compute $", "data": [float(usd_cents(row["compute_usd"])) for row in days]},
            {"label": "Energy $", "data": [float(usd_cents(row["energy_usd"])) for row in days]},
        ],
    }
    if totals.unused_commitment_usd:  # the third part of the total, drawn only when there is some
        unused = [float(usd_cents(row["unused_commitment_usd"])) for row in days]
        trend["datasets"].append({"label": "Unused commitments $", "data": unused})
    return {
        "start": start,
        "last_day": end - timedelta(days=1),
        "overview": selectors.spend_overview(teams=teams, today=today),
        "totals": totals,
        "tables": [{"dimension": dim, "title": title, "rows": by_dimension[dim]} for dim, title in TABLE_DIMENSIONS],
        "trend": trend,
        "egress_routes": routes,
        "egress_usd": sum((route["usd"] for route in routes), selectors.ZERO),
        "budgets": selectors.budget_status_list(month=today, teams=teams, today=today),
        # Reconciliation compares whole cloud accounts, which hold every team's spend: unscoped viewers only.
        "reconciliation": selectors.reconciliation_by_provider(start=start, end=end) if teams is None else [],
    }


def _teams_key(teams: list[int] | None) -> str:
    return "all" if teams is None else ",".join(map(str, teams)) or "none"


def _filtered(request) -> tuple[SpendFilterForm, tuple[list[int] | None, list[int] | None], date]:
    """The filter form bound to the query (or to the defaults), (the viewer's scope, the teams the form selects
    within it), and today."""
    scope = team_scope(request.user)
    today = selectors.utc_today()
    form = SpendFilterForm(request.GET or {}, scope=scope, today=today)
    teams = None
    if form.is_valid():
        teams = teams_in_scope(scope=scope, requested=[t.pk for t in form.cleaned_data["team"]])
    return form, (scope, teams), today


def spend(request):
    """Spend for a date range and teams; an HTMX request (the filter form) gets only the results partial."""
    form, (scope, teams), today = _filtered(request)
    context = {"form": form, "scoped": scope is not None, "query": request.GET.urlencode()}
    status = 200
    if form.is_valid():
        start, end = form.cleaned_data["start"], form.cleaned_data["end"]
        compute = lambda: spend_page_data(start=start, end=end, teams=teams, today=today)  # noqa: E731
        ttl_s = settings.DASHBOARD_CACHE_S
        # Like the overview, the figures are kept a few seconds (the ledger itself changes every 5 minutes),
        # per team selection: never shared between viewers of different scopes.
        key = f"billing:spend:page:{today}:{start}:{end}:{_teams_key(teams)}"
        context.update(cache.get_or_set(key, compute, timeout=ttl_s) if ttl_s > 0 else compute())
    else:
        status = 400
    if request.htmx and not request.htmx.boosted:
        # htmx swaps only 2xx answers; the partial shows the form errors itself.
        return render(request, "billing/htmx/spend_results.html", context)
    return render(request, "billing/spend.html", context, status=status)


def spend_idle_nodes(request):
    """The nodes whose idle GPUs cost most in the filtered range: a panel of the spend page (loaded after it),
    or a page of its own without JavaScript."""
    form, (scope, teams), _ = _filtered(request)
    context = {"form": form, "scoped": scope is not None, "query": request.GET.urlencode()}
    status = 200
    if form.is_valid():
        start, end = form.cleaned_data["start"], form.cleaned_data["end"]
        key = f"billing:spend:idle-nodes:{start}:{end}:{_teams_key(teams)}"
        compute = lambda: selectors.idle_cost_nodes(start=start, end=end, teams=teams)  # noqa: E731
        ttl_s = IDLE_NODES_CACHE_S if settings.DASHBOARD_CACHE_S > 0 else 0
        context.update(
            start=start,
            last_day=end - timedelta(days=1),
            idle_nodes=cache.get_or_set(key, compute, timeout=ttl_s) if ttl_s else compute(),
        )
    else:
        status = 400
    if request.htmx and not request.htmx.boosted:
        return render(request, "billing/htmx/spend_idle_nodes.html", context)
    return render(request, "billing/spend_idle_nodes.html", context, status=status)


urlpatterns = [
    path("spend/", spend, name="spend"),
    path("spend/idle-nodes/", spend_idle_nodes, name="spend-idle-nodes"),
]
