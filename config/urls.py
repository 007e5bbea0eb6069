"""Top-level URLs: dashboard pages, the REST API under /api/v1/, its schema and docs, the admin."""

from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from core.views import healthz

urlpatterns = [
    path("", include("core.urls")),
    path("", include("fleet.urls")),
    path("", include("billing.urls")),
    path("", include("scheduler.urls")),
    path("", include("audit.urls")),
    path("", include("dashboard.urls")),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(("config.api_urls", "api"), namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # DRF marks its views login_required=False for Django's middleware; the docs page is a page, so log in.
    path("api/docs/", login_required(SpectacularSwaggerSplitView.as_view(url_name="api-schema")), name="api-docs"),
]
