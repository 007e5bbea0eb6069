"""Placement: datasets, jobs and cost/data-gravity placement."""

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _after_migrate(sender: AppConfig, **kwargs) -> None:
    from scheduler.schedules import scheduler_schedules_sync

    scheduler_schedules_sync()


class SchedulerConfig(AppConfig):
    name = "scheduler"
    verbose_name = "Scheduler"

    def ready(self) -> None:
        post_migrate.connect(_after_migrate, sender=self, dispatch_uid="scheduler-after-migrate")
