"""The versioned REST API: one router over every app's viewsets."""

from audit.api.urls import urlpatterns as audit_urlpatterns
from billing.api.urls import register as register_billing
from billing.api.urls import urlpatterns as billing_urlpatterns
from core.api.routers import IdRouter
from fleet.api import telemetry as fleet_telemetry
from fleet.api.urls import register as register_fleet
from scheduler.api.urls import register as register_scheduler
from scheduler.api.urls import urlpatterns as scheduler_urlpatterns

router = IdRouter()
register_fleet(router)
register_billing(router)
register_scheduler(router)

urlpatterns = (
    fleet_telemetry.urlpatterns + billing_urlpatterns + scheduler_urlpatterns + audit_urlpatterns + router.urls
)
