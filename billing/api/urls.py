"""Routes of the billing API, registered on the project's /api/v1/ router: prices, spend, the ledger and egress
records, budgets, reports and carbon (one module per resource)."""

from billing.api import budgets, buyrent, carbon, commitments, focus, ledger, prices, reports, spend

API_MODULES = (prices, spend, ledger, budgets, reports, carbon, focus, buyrent, commitments)


def register(router) -> None:
    """Add the billing viewsets to ``router``."""
    for module in API_MODULES:
        module.register(router)


# Non-viewset endpoints (summaries, CSV exports, verbs), mounted under /api/v1/.
urlpatterns = [pattern for module in API_MODULES for pattern in module.urlpatterns]
