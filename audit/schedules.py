"""The audit app's beat schedule entry (created if missing; editable in the admin afterwards)."""

from core.services import periodic_task_ensure

AUDIT_PURGE_INTERVAL_S = 24 * 3600


def audit_schedules_sync() -> None:
    """Ensure beat runs the audit trail's daily purge."""
    periodic_task_ensure(
        name="audit: purge old changes",
        task="audit.tasks.audit_purge",
        every_s=AUDIT_PURGE_INTERVAL_S,
        # A daily batch delete: the reports queue, where a few seconds' wait delays nothing live.
        queue="reports",
        description="Deletes audit events older than AUDIT_RETENTION_DAYS (0 keeps them forever).",
    )
