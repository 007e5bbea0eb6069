"""Fleet inventory: providers, sites, nodes, GPUs, teams and projects; telemetry."""

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _after_migrate(sender: AppConfig, **kwargs) -> None:
    from fleet.schedules import fleet_schedules_sync

    fleet_schedules_sync()


class FleetConfig(AppConfig):
    name = "fleet"
    verbose_name = "Fleet"

    def ready(self) -> None:
        # Beat entries of this app are created after every migrate (kept as they are if edited in the admin).
        post_migrate.connect(_after_migrate, sender=self, dispatch_uid="fleet-after-migrate")
