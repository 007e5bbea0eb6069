"""Writes of the audit trail: purging events past their retention."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from pghistory.models import Context

from audit.selectors import audit_event_models


def audit_purge(*, now: datetime | None = None, retention_days: int | None = None) -> dict[str, int]:
    """Delete events (and pghistory context rows) older than the retention; 0 days keeps everything.

    Returns the number of rows deleted per event model label (only those that lost rows), and ``contexts``.
    """
    days = settings.AUDIT_RETENTION_DAYS if retention_days is None else retention_days
    if days <= 0:
        return {}
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deleted: dict[str, int] = {}
    with transaction.atomic():
        for model in audit_event_models():
            count, _ = model.objects.filter(pgh_created_at__lt=cutoff).delete()
            if count:
                deleted[model._meta.label] = count
        # The event rows carry their context themselves (ContextJSONField); a context row is an orphan.
        contexts, _ = Context.objects.filter(updated_at__lt=cutoff).delete()
        if contexts:
            deleted["contexts"] = contexts
    return deleted
