"""Cross-cutting parts of Fleetdeck: roles, API tokens, worker/beat heartbeats, the page shell."""

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _after_migrate(sender: AppConfig, using: str = "default", **kwargs) -> None:
    from django.apps import apps as global_apps
    from django.contrib.auth.management import create_permissions

    from core.services import heartbeat_schedule_sync, roles_sync

    # post_migrate reaches apps in INSTALLED_APPS order, so apps after core have no permissions yet.
    for app_config in global_apps.get_app_configs():
        create_permissions(app_config, verbosity=0, using=using)
    roles_sync()
    heartbeat_schedule_sync()


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Fleetdeck core"

    def ready(self) -> None:
        # Roles and the heartbeat schedule are derived from code; re-syncing after every migrate picks up the
        # permissions of models added later without a hand-written data migration per model.
        post_migrate.connect(_after_migrate, sender=self, dispatch_uid="core-after-migrate")
        import core.api.schema  # noqa: F401 - registers the OpenAPI extension for token auth
