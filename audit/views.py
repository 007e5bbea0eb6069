"""The Changes page and the history panel a detail page loads (operators and admins only)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET

from audit.forms import ChangeFilterForm
from audit.selectors import audit_visible, change_refs, changes_for, object_history, object_types

CHANGES_PER_PAGE = 50
HISTORY_ROWS = 50


@require_GET
def change_list(request):
    """Every recorded change, newest first, filterable; an HTMX request gets only the table."""
    if not audit_visible(request.user):
        raise PermissionDenied("The audit trail is for operators and admins.")
    form = ChangeFilterForm(request.GET or None)
    form.is_valid()
    page = Paginator(change_refs(form.filters()), CHANGES_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "changes": changes_for(page.object_list),
        "query": query.urlencode(),
    }
    if request.htmx and not request.htmx.boosted:
        return render(request, "audit/htmx/change_table.html", context)
    return render(request, "audit/change_list.html", context)


@require_GET
def object_history_panel(request, object_type: str, pk: int):
    """One object's newest changes, for the History section of its detail page (loaded with hx-get)."""
    if object_type not in object_types():
        raise Http404("Nothing of that kind is audited.")
    allowed = audit_visible(request.user)
    changes = object_history(object_type=object_type, object_id=pk, limit=HISTORY_ROWS) if allowed else []
    context = {"changes": changes, "allowed": allowed, "object_type": object_type, "object_id": pk}
    return render(request, "audit/htmx/object_history.html", context)
