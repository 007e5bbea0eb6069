"""The versioned REST API: one router over every app's viewsets."""

from rest_framework.routers import DefaultRouter

from fleet.api.urls import register as register_fleet

router = DefaultRouter()
register_fleet(router)

urlpatterns = router.urls
