"""Celery tasks of the audit app."""

from celery import shared_task

from audit.services import audit_purge as audit_purge_service


@shared_task(name="audit.tasks.audit_purge", ignore_result=True)
def audit_purge() -> dict[str, int]:
    """Delete audit events older than AUDIT_RETENTION_DAYS (beat runs it daily)."""
    return audit_purge_service()
