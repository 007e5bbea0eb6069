"""Runs of work someone asked for through a page or the API (an inventory sync, a placement run): each is claimed
by exactly one worker, then records its outcome for the client polling it.

The run models (``fleet.SyncRun``, ``scheduler.PlaceRun``) share the fields these functions use: ``status``
(``core.choices.RunStatus``), ``requested_at``, ``started_at``, ``finished_at``, ``report`` and ``error``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Model, Q, QuerySet
from django.utils import timezone

from core.choices import RunStatus

ERROR_MAX_CHARS = 2000
FINISHED = (RunStatus.DONE, RunStatus.FAILED)


def run_claim(runs: QuerySet, run_id: int, *, stale_after: timedelta, now: datetime | None = None) -> bool:
    """Claim run ``run_id`` of ``runs`` for this worker, atomically (queued → running); True if this caller runs it.

    A second delivery of the same run finds it claimed and does nothing. A run left running longer than
    ``stale_after`` (its worker died past the task's time limit) is claimed again.
    """
    now = now or timezone.now()
    claimable = Q(status=RunStatus.QUEUED) | Q(status=RunStatus.RUNNING, started_at__lt=now - stale_after)
    return runs.filter(claimable, pk=run_id).update(status=RunStatus.RUNNING, started_at=now) == 1


def run_update(run: Model, **fields) -> Model:
    """Write ``fields`` to the run (and ``finished_at`` once it is done or failed); return the run."""
    if fields.get("status") in FINISHED:
        fields["finished_at"] = timezone.now()
    for name, value in fields.items():
        setattr(run, name, value)
    run.save(update_fields=list(fields))
    return run


def run_failed(run: Model, exc: BaseException) -> Model:
    """Record that ``run`` failed with ``exc`` (its type and message, bounded)."""
    return run_update(run, status=RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:ERROR_MAX_CHARS])


def run_stalled(run: Model, *, within: timedelta, now: datetime | None = None) -> bool:
    """Whether an unfinished run was asked for longer than ``within`` ago: no worker took it, or one died with it.
    A client polling it stops and says so."""
    now = now or timezone.now()
    return run.status not in FINISHED and run.requested_at < now - within
