"""The overview page: the fleet's GPUs, utilisation and power, the viewer's spend and background-process health."""

from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.shortcuts import render
from django.utils import timezone

from billing.ledger import HOUR, hour_floor
from billing.money import usd_cents
from billing.selectors import ZERO, spend_by_provider_hourly, spend_overview
from core.selectors import process_status_list
from fleet.choices import ProviderKind
from fleet.scoping import team_scope
from fleet.selectors import fleet_overview, idle_node_list, inventory_scope_list
from fleet.telemetry.health import source_status_list
from fleet.telemetry.series import fleet_series, series_window

OVERVIEW_CHART_STEP_S = 600
SPEND_CHART_HOURS = 24
# v3: unhealthy GPUs in the fleet figures; spend by provider per hour and $/h beside the spend figures.
OVERVIEW_CACHE_KEY = "dashboard:overview:v3"


def _provider_chart(series: dict[str, list[dict]], value: str, scale: float = 1.0) -> dict:
    """Chart.js-shaped data: one dataset per provider kind over the union of their time buckets."""
    times = sorted({p["t"] for points in series.values() for p in points})
    datasets = []
    for kind in ProviderKind:
        by_time = {p["t"]: p[value] for p in series.get(kind.value, [])}
        if by_time:
            data = [None if by_time.get(t) is None else round(by_time[t] * scale, 2) for t in times]
            datasets.append({"label": kind.label, "data": data})
    return {"labels": [timezone.localtime(t).strftime("%H:%M") for t in times], "datasets": datasets}


def _overview_data() -> dict:
    """The fleet-wide figures of the overview: the same for every viewer, so they are cached briefly."""
    series = fleet_series(window=series_window(start=None, end=None, step_s=OVERVIEW_CHART_STEP_S))
    return {
        "overview": fleet_overview(),
        "idle_nodes": idle_node_list(),
        "util_chart": _provider_chart(series, "util_pct"),
        "power_chart": _provider_chart(series, "power_w", scale=1 / 1000),
    }


def _spend_cache_key(scope: list[int] | None) -> str:
    """Spend figures depend on the viewer's team scope: one cache entry per scope, never shared across scopes."""
    return f"{OVERVIEW_CACHE_KEY}:spend:{'all' if scope is None else ','.join(map(str, scope))}"


def _spend_hourly(scope: list[int] | None, now: datetime) -> dict:
    """Compute + energy $ per hour by provider kind over the last SPEND_CHART_HOURS complete UTC hours (a stacked
    chart and its table), and the last complete hour's total: the fleet's cost per hour now, as the ledger
    booked it (None before the ledger has that hour)."""
    end = hour_floor(now)
    hours = [end - (SPEND_CHART_HOURS - i) * HOUR for i in range(SPEND_CHART_HOURS)]
    by_kind = spend_by_provider_hourly(start=hours[0], end=end, teams=scope)
    kinds = [kind for kind in ProviderKind if kind.value in by_kind]
    rows = []
    for hour in hours:
        values = [by_kind[kind.value].get(hour, ZERO) for kind in kinds]
        rows.append({"hour": hour, "values": values, "total": sum(values, ZERO)})
    chart = {
        "labels": [timezone.localtime(hour).strftime("%H:%M") for hour in hours],
        "datasets": [
            {"label": kind.label, "data": [float(usd_cents(by_kind[kind.value].get(h, ZERO))) for h in hours]}
            for kind in kinds
        ],
    }
    last = hours[-1]
    booked = any(last in by_kind[kind.value] for kind in kinds)
    per_hour: Decimal | None = rows[-1]["total"] if booked else None
    return {
        "spend_chart": chart,
        "spend_chart_kinds": [kind.label for kind in kinds],
        "spend_chart_rows": rows,
        "cost_hour": last,
        "cost_per_hour_usd": per_hour,
    }


def _spend_figures(scope: list[int] | None) -> dict:
    return {"spend": spend_overview(teams=scope), **_spend_hourly(scope, timezone.now())}


def _overview_spend(request) -> dict:
    """Spend today, month to date against budget, egress, idle $, broken capacity $, unused commitments $ and
    kgCO2e, spend per hour by provider over 24 h and the last complete hour's $ in the viewer's team scope
    (cached briefly)."""
    scope = team_scope(request.user)
    ttl_s = settings.DASHBOARD_CACHE_S
    if ttl_s <= 0:
        return _spend_figures(scope)
    return cache.get_or_set(_spend_cache_key(scope), lambda: _spend_figures(scope), timeout=ttl_s)


def overview(request):
    """The landing page: GPUs online, idle now, unreachable and unhealthy, utilisation and power now and over 24 h
    by provider, spend (with kgCO2e, broken capacity $ and unused commitments $), spend by provider over 24 h and
    the cost per hour now, the nodes idle longest, cloud inventory, telemetry sources and background-process
    health. Live: refreshed by HTMX."""
    ttl_s = settings.DASHBOARD_CACHE_S
    context = {
        **(cache.get_or_set(OVERVIEW_CACHE_KEY, _overview_data, timeout=ttl_s) if ttl_s > 0 else _overview_data()),
        "process_status": process_status_list(),
        "inventory_scopes": inventory_scope_list(),
        "telemetry_sources": source_status_list(),
        **_overview_spend(request),
        "refresh_s": settings.DASHBOARD_REFRESH_S,
    }
    template = "dashboard/overview.html"
    if request.htmx and not request.htmx.boosted:
        template = "dashboard/htmx/overview_stats.html"  # the 30 s refresh swaps only the live panel
    return render(request, template, context)
