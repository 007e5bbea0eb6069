"""Routes of the scheduler API, registered on the project's /api/v1/ router."""

from scheduler.api import quotas, views

# Non-viewset endpoints (summaries, CSV exports, verbs), mounted under /api/v1/.
urlpatterns = []


def register(router) -> None:
    """Add the scheduler viewsets to ``router``."""
    router.register("datasets", views.DatasetViewSet)
    router.register("jobs", views.JobViewSet)
    router.register("placements", views.PlacementViewSet)
    router.register("place-runs", views.PlaceRunViewSet)
    router.register("quotas", quotas.TeamQuotaViewSet)
