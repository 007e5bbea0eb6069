"""Sync runs: a provider's inventory sync asked for through the API, run by a worker and recorded for polling."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone

from core.choices import RunStatus
from core.runs import run_claim, run_failed, run_update
from fleet.inventory.sync import ADAPTERS, inventory_sync
from fleet.models import Provider, SyncRun

logger = logging.getLogger(__name__)

# A sync lists every region with bounded timeouts and retries; past this the worker is stuck, not slow.
SYNC_SOFT_TIME_LIMIT_S = 600
SYNC_TIME_LIMIT_S = 660
# A run still "running" this long after it started lost its worker: another delivery may claim it again.
SYNC_RUN_STALE_AFTER = timedelta(seconds=SYNC_TIME_LIMIT_S + 60)


def sync_run_request(*, provider: Provider) -> tuple[SyncRun, bool]:
    """The sync run for ``provider`` the caller should answer with: the one already queued or running (not
    stale), or a new one. True when it is new (the caller enqueues it on commit). Call in a transaction: the
    provider's row is locked while deciding, so two requests at once never start two syncs."""
    Provider.objects.select_for_update().filter(pk=provider.pk).first()
    live = (
        SyncRun.objects.filter(provider=provider, status__in=(RunStatus.QUEUED, RunStatus.RUNNING))
        .order_by("-requested_at", "-pk")
        .first()
    )
    if live is not None and not _stale(live):
        return live, False
    return SyncRun.objects.create(provider=provider, force=True), True


def _stale(run: SyncRun) -> bool:
    started = run.started_at or run.requested_at
    return started < timezone.now() - SYNC_RUN_STALE_AFTER


def sync_run_execute(run_id: int) -> SyncRun | None:
    """Run the sync ``run_id`` asks for and record its report, or why it could not run; None if this delivery does
    not run it.

    The run is claimed first (core.runs.run_claim): a duplicate delivery of a run queued, running or finished does
    nothing; one left running past the task's time limit (its worker died) is run again. Cloud errors are per
    scope, in the report of a run that is done; a run fails only when the provider was disabled or deleted since
    it was asked for, the task's time limit stopped it, or something unforeseen broke.
    """
    if not run_claim(SyncRun.objects, run_id, stale_after=SYNC_RUN_STALE_AFTER):
        return None
    run = SyncRun.objects.select_related("provider").get(pk=run_id)
    provider = run.provider
    if not provider.enabled or provider.kind not in ADAPTERS:
        return run_update(run, status=RunStatus.FAILED, error="The provider was disabled before it synced.")
    try:
        report = inventory_sync(provider=provider, force=run.force)
    except SoftTimeLimitExceeded:
        return run_update(run, status=RunStatus.FAILED, error="Stopped by the sync task's time limit.")
    except Exception as exc:  # recorded for the client polling, and logged with its traceback
        logger.exception("inventory sync run %s of %s failed", run.pk, provider.name)
        return run_failed(run, exc)
    return run_update(run, status=RunStatus.DONE, report={**report.as_dict(), "ok": report.ok})
