"""The beat scheduler: django-celery-beat's DatabaseScheduler that also records its own heartbeat and tells
each task when it was due (a header), so work tied to a time slot does not depend on broker delays."""

from __future__ import annotations

import logging
import socket
import time
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError
from django_celery_beat.schedulers import DatabaseScheduler

from core.choices import HeartbeatComponent
from core.services import heartbeat_record

logger = logging.getLogger(__name__)
# The message header with the time (ISO 8601) beat meant a task to run at; see scheduled_at().
SCHEDULED_AT_HEADER = "fleetdeck_scheduled_at"


def entry_due_at(entry) -> datetime:
    """When a schedule entry is (or was) due: its last run plus its schedule's wait, not when beat got to it."""
    last_run_at = entry.schedule.maybe_make_aware(entry.last_run_at)
    return entry.schedule.now() + entry.schedule.remaining_estimate(last_run_at)


def scheduled_at(request) -> datetime | None:
    """The time beat scheduled the task of ``request`` (a task's ``self.request``); None if beat did not send it."""
    value = getattr(request, SCHEDULED_AT_HEADER, None)
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        when = None
    if when is None or when.tzinfo is None:
        logger.warning("ignoring an unreadable %s header: %r", SCHEDULED_AT_HEADER, value)
        return None
    return when


class HeartbeatDatabaseScheduler(DatabaseScheduler):
    """Schedules from the database (editable in the admin) and marks beat alive every heartbeat interval."""

    _last_heartbeat_monotonic: float = float("-inf")

    def tick(self, *args, **kwargs):
        now = time.monotonic()
        if now - self._last_heartbeat_monotonic >= settings.HEARTBEAT_INTERVAL_S / 2:
            try:
                heartbeat_record(component=HeartbeatComponent.BEAT, hostname=socket.gethostname())
                self._last_heartbeat_monotonic = now
            except DatabaseError:
                # A database blip must not stop beat from scheduling; the dashboard shows beat as stale.
                logger.exception("could not record the beat heartbeat")
        # Never sleep past the next heartbeat, or an idle schedule would leave beat looking dead.
        return min(super().tick(*args, **kwargs), settings.HEARTBEAT_INTERVAL_S / 2)

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        """Send the entry's task with the time it was due in the SCHEDULED_AT_HEADER header."""
        try:
            due_at = entry_due_at(entry)  # before a reserve (advance) moves the entry's last run to now
        except Exception:  # a schedule type without these methods: send the task anyway, as celery would
            logger.exception("cannot tell when %s was due; sending it without %s", entry.name, SCHEDULED_AT_HEADER)
            return super().apply_async(entry, producer, advance, **kwargs)
        # Every send comes through here and sets the header anew, so the entry can carry it (ModelEntry cannot
        # be copied: its pickling protocol is the plain ScheduleEntry's).
        entry.options = {
            **entry.options,
            "headers": {**entry.options.get("headers", {}), SCHEDULED_AT_HEADER: due_at.isoformat()},
        }
        return super().apply_async(entry, producer, advance, **kwargs)
