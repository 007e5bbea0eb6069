"""Resolving GPU health events: an open XID, double-bit ECC or GPU-lost event counts the GPU's hours as broken
capacity $ (billing.ledger) until its ``resolved_at``.

An operator resolves an event (``POST /api/v1/health-events/{id}/resolve/``, the admin's "Mark resolved");
a GPU-lost event is resolved by the ingest path when that GPU reports telemetry again (``gpu_lost_resolve``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.utils import timezone

from fleet.choices import HealthEventKind
from fleet.models import HealthEvent

# A resolution a little ahead of this server's clock (another host's clock, a form filled in slowly) is fine.
FUTURE_TOLERANCE = timedelta(minutes=5)


def health_event_resolve(*, event: HealthEvent, at: datetime | None = None, now: datetime | None = None) -> HealthEvent:
    """Mark ``event`` resolved at ``at`` (default now); raise ValidationError if it is resolved already, or ``at``
    is before the event or in the future. Two concurrent resolutions cannot both succeed."""
    now = now or timezone.now()
    at = at or now
    if event.resolved_at is not None:
        when = f"{event.resolved_at:%Y-%m-%d %H:%M}"
        raise ValidationError({"resolved_at": f"This event was resolved already, at {when} UTC."})
    if at < event.occurred_at:
        raise ValidationError(
            {"resolved_at": f"An event is resolved after it occurred ({event.occurred_at:%Y-%m-%d %H:%M:%S} UTC)."}
        )
    if at > now + FUTURE_TOLERANCE:
        raise ValidationError({"resolved_at": "An event cannot be resolved in the future."})
    if not HealthEvent.objects.filter(pk=event.pk, resolved_at__isnull=True).update(resolved_at=at):
        event.refresh_from_db(fields=["resolved_at"])
        raise ValidationError({"resolved_at": "This event was resolved already."})
    event.resolved_at = at
    return event


def gpu_lost_resolve(*, gpu_ids: list[int], at: datetime) -> int:
    """Resolve the open GPU-lost events of GPUs that report telemetry again, at ``at`` (never before an event
    occurred); return how many. One statement, run only for GPUs that came back in this poll."""
    if not gpu_ids:
        return 0
    return HealthEvent.objects.filter(
        gpu_id__in=gpu_ids, kind=HealthEventKind.GPU_LOST, resolved_at__isnull=True, occurred_at__lte=at
    ).update(resolved_at=at)
