"""Celery tasks of the scheduler (queue ``scheduler``, by the ``scheduler.tasks.`` name prefix), and the helpers
views use to enqueue them once their transaction commits.

Services (``scheduler.jobs``, ``scheduler.placements``) never enqueue: they return what happened, and the tasks
and views here enqueue what follows (a placement run, the live launches a run chose).
"""

from __future__ import annotations

from functools import partial

from celery import shared_task
from django.db import transaction

from scheduler import launch, placements, runs
from scheduler.models import PlaceRun
from scheduler.runs import PLACE_SOFT_TIME_LIMIT_S, PLACE_TIME_LIMIT_S


@shared_task(
    name="scheduler.tasks.jobs_place",
    ignore_result=True,
    soft_time_limit=PLACE_SOFT_TIME_LIMIT_S,
    time_limit=PLACE_TIME_LIMIT_S,
)
def jobs_place(run_id: int | None = None) -> dict | None:
    """Place every pending job (on submission, when GPUs free up, every minute from beat, or for the placement
    run ``run_id`` someone asked for), then queue the live launches it chose."""
    report = runs.place_run_execute(run_id) if run_id is not None else placements.jobs_place()
    if report is None:
        return None
    placements_launch_enqueue(report.launch_ids)
    return report.as_dict()


@shared_task(name="scheduler.tasks.jobs_requeue_unreachable", ignore_result=True)
def jobs_requeue_unreachable() -> list[int]:
    """Send placed jobs on unreachable nodes back to the queue, and queue a placement run for them."""
    job_ids = placements.jobs_requeue_unreachable()
    if job_ids:
        jobs_place_enqueue()
    return job_ids


@shared_task(name="scheduler.tasks.placement_launch", ignore_result=True)
def placement_launch(placement_id: int) -> str | None:
    """Launch one offer placement's instances (live mode); a duplicate delivery does nothing."""
    placement = launch.placement_launch(placement_id=placement_id)
    return placement.launch_status if placement else None


def jobs_place_enqueue() -> None:
    """Queue a placement run once the current transaction commits (at once outside one)."""
    transaction.on_commit(partial(jobs_place.delay))


def placements_launch_enqueue(placement_ids: list[int]) -> None:
    """Queue the live launch of each placement once the current transaction commits."""
    for placement_id in placement_ids:
        transaction.on_commit(partial(placement_launch.delay, placement_id))


def place_run_start(*, user) -> PlaceRun:
    """Record a placement run asked for by ``user`` and queue it once the transaction commits."""
    run = runs.place_run_create(user=user)
    transaction.on_commit(partial(jobs_place.delay, run.pk))
    return run
