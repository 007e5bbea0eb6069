"""Routes of the fleet API, registered on the project's /api/v1/ router."""

from fleet.api import capacity, views
from fleet.api.promql import PromQLSourceViewSet


def register(router) -> None:
    """Add the fleet viewsets to ``router``."""
    router.register("providers", views.ProviderViewSet)
    router.register("sites", views.SiteViewSet)
    router.register("teams", views.TeamViewSet)
    router.register("projects", views.ProjectViewSet)
    router.register("nodes", views.NodeViewSet)
    router.register("gpus", views.GPUViewSet)
    router.register("gpu-slices", capacity.GpuSliceViewSet)
    router.register("health-events", capacity.HealthEventViewSet)
    router.register("inventory-scopes", views.InventoryScopeViewSet)
    router.register("sync-runs", views.SyncRunViewSet)
    router.register("promql-sources", PromQLSourceViewSet)
