"""Placement runs asked for by a person: recorded, run by a worker, and their report kept for polling."""

from __future__ import annotations

import logging

from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone

from core.choices import RunStatus
from scheduler.models import PlaceRun
from scheduler.placements import PlaceReport, jobs_place

logger = logging.getLogger(__name__)
ERROR_MAX_CHARS = 2000


def place_run_create(*, user) -> PlaceRun:
    """Record a placement run asked for by ``user``; the caller enqueues it (``scheduler.tasks.place_run_start``)."""
    return PlaceRun.objects.create(requested_by=user if user and user.is_authenticated else None)


def place_run_execute(run_id: int) -> PlaceReport | None:
    """Place every pending job for the run ``run_id`` and record its report, or why it could not run.

    Returns the report (its launches are for the caller to enqueue), or None when there is no such run or it has
    finished already (a duplicate delivery). One left running by a worker that died is run again. A run skipped
    because another placement run held the lock is done, its report saying so: the other run places the jobs.
    """
    run = PlaceRun.objects.filter(pk=run_id, status__in=(RunStatus.QUEUED, RunStatus.RUNNING)).first()
    if run is None:
        return None
    _place_run_update(run, status=RunStatus.RUNNING, started_at=timezone.now())
    try:
        report = jobs_place()
    except SoftTimeLimitExceeded:
        _place_run_update(run, status=RunStatus.FAILED, error="Stopped by the placement task's time limit.")
        raise
    except Exception as exc:  # recorded for the client polling, and re-raised for the worker's log
        _place_run_update(run, status=RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:ERROR_MAX_CHARS])
        raise
    _place_run_update(run, status=RunStatus.DONE, report=report.as_dict())
    return report


def _place_run_update(run: PlaceRun, **fields) -> PlaceRun:
    """Write ``fields`` to the run (and ``finished_at`` once it is done or failed); return the run."""
    if fields["status"] in (RunStatus.DONE, RunStatus.FAILED):
        fields["finished_at"] = timezone.now()
    for name, value in fields.items():
        setattr(run, name, value)
    run.save(update_fields=list(fields))
    return run
