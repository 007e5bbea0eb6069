"""Fleet pages: the node list (full page, or the table partial for HTMX) and node detail."""

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.paginator import Paginator
from django.db.models import prefetch_related_objects
from django.http import Http404, QueryDict
from django.shortcuts import render
from django.utils import timezone

from fleet import selectors
from fleet.choices import HealthEventKind
from fleet.filtersets import NodeListFilterSet
from fleet.models import Node
from fleet.scoping import team_scope
from fleet.telemetry.series import gpu_series, series_window

NODES_PER_PAGE = 50
CHART_RANGES = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
DEFAULT_CHART_RANGE = "6h"
CHART_METRICS = (
    ("util_pct", "Utilisation", "%"),
    ("mem_used_mib", "Memory used", "MiB"),
    ("power_w", "Power", "W"),
    ("temp_c", "Temperature", "°C"),
)
# (ordering key of NodeFilterSet, column heading, numeric?) for the sortable columns of the node table.
SORTABLE_COLUMNS = (
    ("name", "Name", False),
    ("site", "Site", False),
    ("instance_type", "Type", False),
    ("gpu_count", "GPUs", True),
    ("state", "State", False),
    ("last_seen", "Last seen", False),
    ("util", "Utilisation", True),
    ("power", "Power (W)", True),
    ("cost", "$ last hour", True),
    ("health", "Health", False),
)
HOUR = timedelta(hours=1)
# The node list's health label by selectors.HEALTH_SEVERITY rank (None: no open broken event).
HEALTH_LABELS = {rank: HealthEventKind(kind).label for kind, rank in selectors.HEALTH_SEVERITY.items()}


def _clean_query(params: QueryDict) -> QueryDict:
    """A copy of the query string without empty values (an unused filter field sends ``q=``)."""
    clean = QueryDict(mutable=True)
    for key, values in params.lists():
        kept = [v for v in values if v.strip()]
        if kept:
            clean.setlist(key, kept)
    return clean


def _sort_links(query, current: str) -> list[dict]:
    """Each sortable column's link: ascending first, descending when it is already sorted ascending."""
    links = []
    for key, label, numeric in SORTABLE_COLUMNS:
        q = query.copy()
        q["ordering"] = f"-{key}" if current == key else key
        links.append(
            {
                "key": key,
                "label": label,
                "numeric": numeric,
                "href": "?" + q.urlencode(),
                "active": current.lstrip("-") == key,
                "descending": current == f"-{key}",
            }
        )
    return links


def last_complete_hour(now: datetime) -> datetime:
    """The start of the last complete UTC hour before ``now`` (the ledger recomputes it every few minutes)."""
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - HOUR


def node_list(request):
    """Nodes, filterable and sortable, with their utilisation and power now, the compute + energy $ of the last
    complete ledger hour (in the viewer's team scope) and their health; an HTMX request gets only the table."""
    now = timezone.now()
    hour = last_complete_hour(now)
    scope = team_scope(request.user)
    nodes = selectors.node_list_columns(selectors.node_list(), hour=hour, teams=scope, now=now)
    filterset = NodeListFilterSet(request.GET or None, queryset=nodes)
    queryset = filterset.qs if filterset.is_bound and filterset.is_valid() else nodes
    page = Paginator(queryset, NODES_PER_PAGE).get_page(request.GET.get("page"))
    for node in page:  # the page's rows, read once (Page keeps the list)
        node.health = HEALTH_LABELS.get(node.health_rank)
    query = _clean_query(request.GET)
    query.pop("page", None)
    context = {
        "filterset": filterset,
        "page": page,
        "cost_hour": hour,
        "node_cost_scoped": scope is not None,
        "query": query.urlencode(),
        "sort_links": _sort_links(query, request.GET.get("ordering", "")),
    }
    if request.htmx and not request.htmx.boosted:
        response = render(request, "fleet/htmx/node_table.html", context)
        # The form sends every field; the address bar should keep only the filters in use.
        clean = _clean_query(request.GET).urlencode()
        response["HX-Push-Url"] = f"{request.path}?{clean}" if clean else request.path
        return response
    return render(request, "fleet/node_list.html", context)


def _node_or_404(pk: int) -> Node:
    try:
        return selectors.node_detail(pk=pk)
    except Node.DoesNotExist:
        raise Http404("No such node.") from None


def node_detail(request, pk: int):
    """One node: where it runs, who owns it, its GPUs with their latest reading and slices, and health events.
    The charts load separately (node_charts), so this page stays fast."""
    node = _node_or_404(pk)
    # The GPUs are prefetched already; their slices (with team and project) come in three more queries in all.
    prefetch_related_objects([node], "gpus__slices__team", "gpus__slices__project")
    context = {
        "node": node,
        "events": selectors.node_health_events(node=node),
        "ranges": CHART_RANGES,
        "range": _chart_range(request),
        "idle_after": timezone.now() - timedelta(seconds=settings.IDLE_MIN_DURATION_S),
    }
    return render(request, "fleet/node_detail.html", context)


def node_charts(request, pk: int):
    """Per-GPU utilisation, memory, power and temperature over a chosen range (a panel, or a page without JS)."""
    node = _node_or_404(pk)
    key = _chart_range(request)
    end = timezone.now()
    window = series_window(start=end - CHART_RANGES[key], end=end, step_s=None)
    gpus = list(node.gpus.all())
    series = gpu_series(gpu_ids=[g.pk for g in gpus], window=window)
    times = sorted({p["t"] for points in series.values() for p in points})
    fmt = "%H:%M" if CHART_RANGES[key] <= timedelta(days=1) else "%m-%d %H:%M"
    labels = [timezone.localtime(t).strftime(fmt) for t in times]
    charts = []
    for metric, title, unit in CHART_METRICS:
        datasets = []
        for gpu in gpus:
            by_time = {p["t"]: p[metric] for p in series[gpu.pk]}
            datasets.append({"label": f"GPU {gpu.index}", "data": [by_time.get(t) for t in times]})
        charts.append(
            {"id": f"chart-{metric}", "title": title, "unit": unit, "data": {"labels": labels, "datasets": datasets}}
        )
    context = {"node": node, "charts": charts, "range": key, "ranges": CHART_RANGES, "window": window}
    template = "fleet/htmx/node_charts.html" if request.htmx else "fleet/node_charts.html"
    return render(request, template, context)


def _chart_range(request) -> str:
    key = request.GET.get("range", DEFAULT_CHART_RANGE)
    return key if key in CHART_RANGES else DEFAULT_CHART_RANGE
