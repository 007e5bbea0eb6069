"""Dashboard shell pages: overview, API tokens, health check."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from billing.scoping import spend_team_scope
from billing.selectors import spend_overview
from core.forms import APITokenForm
from core.models import APIToken
from core.selectors import process_status_list
from core.services import api_token_create
from fleet.choices import ProviderKind
from fleet.selectors import fleet_overview, idle_node_list, inventory_scope_list
from fleet.telemetry.series import fleet_series, series_window

OVERVIEW_CHART_STEP_S = 600
OVERVIEW_CACHE_KEY = "core:overview:v1"


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


def _overview_spend(request):
    """Spend today, month to date against budget, egress and idle $ in the viewer's team scope (cached briefly)."""
    scope = spend_team_scope(request.user)
    ttl_s = settings.DASHBOARD_CACHE_S
    if ttl_s <= 0:
        return spend_overview(teams=scope)
    return cache.get_or_set(_spend_cache_key(scope), lambda: spend_overview(teams=scope), timeout=ttl_s)


def overview(request):
    """The landing page: GPUs online, idle and unreachable, utilisation and power now and over 24 h by provider,
    the nodes idle longest, cloud inventory and background-process health. Live: refreshed by HTMX."""
    ttl_s = settings.DASHBOARD_CACHE_S
    context = {
        **(cache.get_or_set(OVERVIEW_CACHE_KEY, _overview_data, timeout=ttl_s) if ttl_s > 0 else _overview_data()),
        "process_status": process_status_list(),
        "inventory_scopes": inventory_scope_list(),
        "spend": _overview_spend(request),
        "refresh_s": settings.DASHBOARD_REFRESH_S,
    }
    template = "core/overview.html"
    if request.htmx and not request.htmx.boosted:
        template = "core/htmx/overview_stats.html"  # the 30 s refresh swaps only the live panel
    return render(request, template, context)


def token_list(request):
    """Your API tokens, and a form to create one (its secret is shown once)."""
    form = APITokenForm(request.POST or None)
    new_secret = None
    if request.method == "POST" and form.is_valid():
        token, new_secret = api_token_create(
            user=request.user,
            name=form.cleaned_data["name"],
            read_only=form.cleaned_data["read_only"],
            expires=form.expires(),
        )
        form = APITokenForm()
    tokens = APIToken.objects.filter(user=request.user)
    return render(request, "core/token_list.html", {"form": form, "tokens": tokens, "new_secret": new_secret})


@require_POST
def token_delete(request, pk: int):
    """Revoke one of your tokens."""
    token = get_object_or_404(APIToken, pk=pk, user=request.user)
    token.delete()
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("token-list")


@require_GET
@login_not_required
def healthz(request) -> HttpResponse:
    """Liveness and database readiness for load balancers and compose health checks (no auth, no data)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - any database failure means "not ready"
        return JsonResponse({"status": "error", "database": "unreachable"}, status=503)
    return JsonResponse({"status": "ok"})
