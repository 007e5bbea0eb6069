"""The dashboard app: the top domain layer, for pages that compose several apps (the overview)."""

from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """Pages composing several apps; no models of its own."""

    name = "dashboard"
    verbose_name = "Fleetdeck dashboard"
