"""The audit trail: event tables written by database triggers, their context, the Changes page and API."""

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _after_migrate(sender: AppConfig, **kwargs) -> None:
    from audit.schedules import audit_schedules_sync

    audit_schedules_sync()


class AuditConfig(AppConfig):
    """The audit app: connects the task context and creates the purge's beat entry after migrate."""

    name = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from audit.context import task_context_connect

        # Changes a Celery task makes are recorded as the task's (interface "task").
        task_context_connect()
        post_migrate.connect(_after_migrate, sender=self, dispatch_uid="audit-after-migrate")
