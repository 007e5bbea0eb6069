"""URLs of the dashboard: the overview at the site's root."""

from django.urls import path

from dashboard import metrics_access, views

urlpatterns = [
    path("", views.overview, name="overview"),
    path("metrics", metrics_access.metrics, name="metrics"),
]
