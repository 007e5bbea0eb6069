"""The beat scheduler: django-celery-beat's DatabaseScheduler that also records its own heartbeat."""

from __future__ import annotations

import logging
import socket
import time

from django.conf import settings
from django.db import DatabaseError
from django_celery_beat.schedulers import DatabaseScheduler

from core.choices import HeartbeatComponent
from core.services import heartbeat_record

logger = logging.getLogger(__name__)


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
