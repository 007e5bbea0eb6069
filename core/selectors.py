"""Reads of the core app for pages and the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from core.choices import HeartbeatComponent
from core.models import Heartbeat


@dataclass(frozen=True)
class ProcessStatus:
    """Whether one background process (beat, or the worker of one queue) was seen recently."""

    label: str
    last_seen: datetime | None
    hostname: str
    stale: bool


def process_status_list(*, now: datetime | None = None) -> list[ProcessStatus]:
    """Beat and one worker entry per queue, each marked stale when not seen within the allowed time."""
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.HEARTBEAT_STALE_AFTER_S)
    seen = {(hb.component, hb.name): hb for hb in Heartbeat.objects.all()}
    wanted = [(HeartbeatComponent.BEAT, "", "Celery beat")] + [
        (HeartbeatComponent.WORKER, queue, f"Worker · {queue} queue") for queue in settings.FLEETDECK_QUEUES
    ]
    statuses = []
    for component, name, label in wanted:
        hb = seen.get((component.value, name))
        statuses.append(
            ProcessStatus(
                label=label,
                last_seen=hb.last_seen if hb else None,
                hostname=hb.hostname if hb else "",
                stale=hb is None or hb.last_seen < stale_before,
            )
        )
    return statuses
