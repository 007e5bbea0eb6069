"""The versioned REST API: one router over every app's viewsets."""

from rest_framework.routers import DefaultRouter

from fleet.api import telemetry as fleet_telemetry
from fleet.api.urls import register as register_fleet

router = DefaultRouter()
register_fleet(router)

urlpatterns = fleet_telemetry.urlpatterns + router.urls
