"""URLs of the dashboard: the overview at the site's root."""

from django.urls import path

from dashboard import views

urlpatterns = [
    path("", views.overview, name="overview"),
]
