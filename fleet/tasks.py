"""Celery tasks of the fleet app. Task names start with ``fleet.tasks.inventory_`` or ``fleet.tasks.telemetry_``,
which routes them to the inventory and telemetry queues (settings.CELERY_TASK_ROUTES)."""

import logging
from datetime import timedelta

from celery import shared_task
from django.db import connection
from django.utils import timezone

import fleet.inventory.tasks  # noqa: F401 - registers the inventory tasks where autodiscovery looks
from core.beat import scheduled_at
from fleet.telemetry.maintenance import telemetry_maintain
from fleet.telemetry.poll import telemetry_poll
from fleet.telemetry.storage import fleet_minute_rollup

logger = logging.getLogger(__name__)
# pg_try_advisory_lock key: one poll cycle at a time across all workers.
POLL_LOCK_KEY = 0x46_44_50_4F_4C_4C  # "FDPOLL"


@shared_task(name="fleet.tasks.telemetry_poll_all", ignore_result=True, bind=True)
def telemetry_poll_all(self) -> None:
    """Poll every node's endpoint; skipped while another worker's cycle is still running.

    The samples' slot is the time beat scheduled this poll, so a message the broker delivers a little late
    still fills its own slot (and not the next one, which the next poll would then find taken).
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [POLL_LOCK_KEY])
        if not cursor.fetchone()[0]:
            logger.warning("previous telemetry poll still running; skipping this one")
            return
        try:
            report = telemetry_poll(scheduled_at=scheduled_at(self.request))
            logger.info("telemetry poll: %s", {k: v for k, v in report.as_dict().items() if k != "errors"})
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [POLL_LOCK_KEY])


@shared_task(name="fleet.tasks.telemetry_rollup_minutes", ignore_result=True)
def telemetry_rollup_minutes() -> None:
    """Recompute the fleet-wide minute series for the last few minutes (idempotent)."""
    now = timezone.now()
    fleet_minute_rollup(start=now - timedelta(minutes=3), end=now)


@shared_task(name="fleet.tasks.telemetry_maintain", ignore_result=True)
def telemetry_maintain_task() -> None:
    """Prepare partitions, roll up finished hours, and apply retention."""
    telemetry_maintain(now=timezone.now())
