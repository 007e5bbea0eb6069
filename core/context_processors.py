"""Template context shared by every page."""

from django.utils.functional import SimpleLazyObject

from core.selectors import process_status_list


def _processes() -> dict:
    statuses = process_status_list()
    return {"all": statuses, "stale": [s for s in statuses if s.stale]}


def fleetdeck(request) -> dict:
    """Background-process health for the layout's warning banner; queried only when a page renders it."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    return {"processes": SimpleLazyObject(_processes)}
