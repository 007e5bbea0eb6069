"""Fleet pages: the node list (full page, or the table partial for HTMX) and node detail."""

from django.core.paginator import Paginator
from django.http import Http404, QueryDict
from django.shortcuts import render

from fleet import selectors
from fleet.filtersets import NodeFilterSet
from fleet.models import Node

NODES_PER_PAGE = 50
# (ordering key of NodeFilterSet, column heading, numeric?) for the sortable columns of the node table.
SORTABLE_COLUMNS = (
    ("name", "Name", False),
    ("site", "Site", False),
    ("instance_type", "Type", False),
    ("gpu_count", "GPUs", True),
    ("state", "State", False),
    ("last_seen", "Last seen", False),
)


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


def node_list(request):
    """Nodes, filterable and sortable; an HTMX request gets only the table."""
    filterset = NodeFilterSet(request.GET or None, queryset=selectors.node_list())
    queryset = filterset.qs if filterset.is_bound and filterset.is_valid() else selectors.node_list()
    page = Paginator(queryset, NODES_PER_PAGE).get_page(request.GET.get("page"))
    query = _clean_query(request.GET)
    query.pop("page", None)
    context = {
        "filterset": filterset,
        "page": page,
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


def node_detail(request, pk: int):
    """One node: where it runs, who owns it, and its GPUs."""
    try:
        node = selectors.node_detail(pk=pk)
    except Node.DoesNotExist:
        raise Http404("No such node.") from None
    return render(request, "fleet/node_detail.html", {"node": node})
