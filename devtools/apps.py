"""The devtools app: registers the development commands (seed_demo, bench, mailsink, simulate, demo_clouds)."""

from django.apps import AppConfig


class DevtoolsConfig(AppConfig):
    """Development tooling; it has no models, only management commands."""

    name = "devtools"
    verbose_name = "Fleetdeck development tools"
