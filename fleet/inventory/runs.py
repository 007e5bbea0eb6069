"""Sync runs: a provider's inventory sync asked for through the API, run by a worker and recorded for polling."""

from __future__ import annotations

import logging

from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone

from core.choices import RunStatus
from fleet.inventory.sync import ADAPTERS, ERROR_MAX_CHARS, inventory_sync
from fleet.models import SyncRun

logger = logging.getLogger(__name__)


def sync_run_execute(run_id: int) -> SyncRun | None:
    """Run the sync ``run_id`` asks for and record its report, or why it could not run; None if there is none.

    A run already finished (a duplicate delivery) is left as it is; one left running by a worker that died is run
    again. Cloud errors are per scope, in the report of a run that is done; a run fails only when the provider was
    disabled or deleted since it was asked for, the task's time limit stopped it, or something unforeseen broke.
    """
    run = (
        SyncRun.objects.select_related("provider")
        .filter(pk=run_id, status__in=(RunStatus.QUEUED, RunStatus.RUNNING))
        .first()
    )
    if run is None:
        return None
    _sync_run_update(run, status=RunStatus.RUNNING, started_at=timezone.now())
    provider = run.provider
    if not provider.enabled or provider.kind not in ADAPTERS:
        return _sync_run_update(run, status=RunStatus.FAILED, error="The provider was disabled before it synced.")
    try:
        report = inventory_sync(provider=provider, force=run.force)
    except SoftTimeLimitExceeded:
        return _sync_run_update(run, status=RunStatus.FAILED, error="Stopped by the sync task's time limit.")
    except Exception as exc:  # recorded for the client polling, and logged with its traceback
        logger.exception("inventory sync run %s of %s failed", run.pk, provider.name)
        return _sync_run_update(run, status=RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:ERROR_MAX_CHARS])
    return _sync_run_update(run, status=RunStatus.DONE, report={**report.as_dict(), "ok": report.ok})


def _sync_run_update(run: SyncRun, **fields) -> SyncRun:
    """Write ``fields`` to the run (and ``finished_at`` once it is done or failed); return the run."""
    if fields["status"] in (RunStatus.DONE, RunStatus.FAILED):
        fields["finished_at"] = timezone.now()
    for name, value in fields.items():
        setattr(run, name, value)
    run.save(update_fields=list(fields))
    return run
