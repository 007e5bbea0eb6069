"""Placement runs asked for by a person: recorded, claimed by one worker, and their report kept for polling."""

from __future__ import annotations

from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded

from core.choices import RunStatus
from core.runs import run_claim, run_failed, run_update
from scheduler.models import PlaceRun
from scheduler.placements import PlaceReport, jobs_place

# A placement run solves small priority tiers exactly (MILP, 10 s limit each) and larger ones with the fast
# method; a run still going after these limits is stopped (soft limit first) rather than hold a worker.
PLACE_SOFT_TIME_LIMIT_S = 120
PLACE_TIME_LIMIT_S = 150
# A run still "running" this long after it started lost its worker: another delivery may claim it again.
PLACE_RUN_STALE_AFTER = timedelta(seconds=PLACE_TIME_LIMIT_S + 30)
# A run not finished this long after it was asked for: no worker is consuming the scheduler queue, or one died
# with it. The page stops polling and says so.
PLACE_RUN_STALLED_AFTER = timedelta(minutes=5)


def place_run_create(*, user) -> PlaceRun:
    """Record a placement run asked for by ``user``; the caller enqueues it (``scheduler.tasks.place_run_start``)."""
    return PlaceRun.objects.create(requested_by=user if user and user.is_authenticated else None)


def place_run_execute(run_id: int) -> PlaceReport | None:
    """Place every pending job for the run ``run_id`` and record its report, or why it could not run.

    Returns the report (its launches are for the caller to enqueue), or None when this delivery does not run it:
    the run is claimed first (core.runs.run_claim), so a duplicate delivery of a run queued, running or finished
    does nothing, and one left running past the task's time limit is run again. A run skipped because another
    placement run held the lock is done, its report saying so: the other run places the jobs.
    """
    if not run_claim(PlaceRun.objects, run_id, stale_after=PLACE_RUN_STALE_AFTER):
        return None
    run = PlaceRun.objects.get(pk=run_id)
    try:
        report = jobs_place()
    except SoftTimeLimitExceeded:
        run_update(run, status=RunStatus.FAILED, error="Stopped by the placement task's time limit.")
        raise
    except Exception as exc:  # recorded for the client polling, and re-raised for the worker's log
        run_failed(run, exc)
        raise
    run_update(run, status=RunStatus.DONE, report=report.as_dict())
    return report
