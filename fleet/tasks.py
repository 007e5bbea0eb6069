"""Celery tasks of the fleet app. Task names start with ``fleet.tasks.inventory_`` or ``fleet.tasks.telemetry_``,
which routes them to the inventory and telemetry queues (settings.CELERY_TASK_ROUTES)."""

import logging
from datetime import datetime, timedelta

from celery import shared_task
from django.utils import timezone

import fleet.inventory.tasks  # noqa: F401 - registers the inventory tasks where autodiscovery looks
from core.beat import scheduled_at as beat_scheduled_at
from fleet.choices import TelemetrySourceKind
from fleet.telemetry.health import source_health_prune
from fleet.telemetry.maintenance import telemetry_maintain
from fleet.telemetry.shards import polled_node_ids, shard_name, shard_poll, shards_plan
from fleet.telemetry.storage import fleet_minute_rollup

logger = logging.getLogger(__name__)
# A failed scrape shard is retried once, this many seconds later (docs/telemetry.md, "Scrape shards").
SHARD_RETRY_COUNTDOWN_S = 1


@shared_task(name="fleet.tasks.telemetry_poll_all", ignore_result=True, bind=True)
def telemetry_poll_all(self) -> list[list[int]]:
    """Split the polled nodes into shards and enqueue one ``telemetry_poll_shard`` per shard, all for one slot.

    The slot is the time beat scheduled this tick (or now, for a tick sent by hand), so a message the broker
    delivers a little late still fills its own slot (and not the next one, which the next tick would then find
    taken). Returns the shards' node ids.
    """
    when = beat_scheduled_at(self.request) or timezone.now()
    shards = shards_plan(polled_node_ids())
    for index, node_ids in enumerate(shards):
        if not node_ids:
            continue  # the hash left this shard empty: nothing to poll
        telemetry_poll_shard.apply_async(
            kwargs={"index": index, "count": len(shards), "node_ids": node_ids, "scheduled_at": when.isoformat()}
        )
    # The shards of an earlier count (the fleet grew or shrank) no longer run: they leave the overview.
    source_health_prune(TelemetrySourceKind.SCRAPE_SHARD, keep={shard_name(i, len(shards)) for i in range(len(shards))})
    logger.info("telemetry poll: %d nodes in %d shards for %s", sum(map(len, shards)), len(shards), when)
    return shards


@shared_task(name="fleet.tasks.telemetry_poll_shard", ignore_result=True, bind=True, max_retries=1)
def telemetry_poll_shard(self, *, index: int, count: int, node_ids: list[int], scheduled_at: str) -> None:
    """Poll one shard's nodes into the tick's slot; a failed run is retried once (ingest stores nothing twice)."""
    try:
        report = shard_poll(
            index=index, count=count, node_ids=node_ids, scheduled_at=datetime.fromisoformat(scheduled_at)
        )
    except Exception as exc:
        logger.warning("scrape shard %d/%d failed (%s)", index, count, type(exc).__name__)
        raise self.retry(exc=exc, countdown=SHARD_RETRY_COUNTDOWN_S) from exc
    if report is not None:
        logger.info(
            "scrape shard %d/%d: %s", index, count, {k: v for k, v in report.as_dict().items() if k != "errors"}
        )


@shared_task(name="fleet.tasks.telemetry_rollup_minutes", ignore_result=True)
def telemetry_rollup_minutes() -> None:
    """Recompute the fleet-wide minute series for the last few minutes (idempotent)."""
    now = timezone.now()
    fleet_minute_rollup(start=now - timedelta(minutes=3), end=now)


@shared_task(name="fleet.tasks.telemetry_maintain", ignore_result=True)
def telemetry_maintain_task() -> None:
    """Prepare partitions, roll up finished hours, and apply retention."""
    telemetry_maintain(now=timezone.now())


@shared_task(name="fleet.tasks.telemetry_promql_read", ignore_result=True)
def telemetry_promql_read() -> None:
    """Read every enabled PromQL source's new steps into samples (fleet.telemetry.promql); one bad source only
    records its own failure."""
    from fleet.telemetry.promql import promql_read_all

    for report in promql_read_all():
        logger.info("PromQL source read: %s", report.as_dict())
