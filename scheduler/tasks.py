"""Celery tasks of the scheduler (queue ``scheduler``, by the ``scheduler.tasks.`` name prefix)."""

from celery import shared_task

from scheduler import launch, services

# A placement run solves small priority tiers exactly (MILP, 10 s limit each) and larger ones with the fast
# method; a run still going after these limits is stopped (soft limit first) rather than hold a worker.
PLACE_SOFT_TIME_LIMIT_S = 120
PLACE_TIME_LIMIT_S = 150


@shared_task(
    name="scheduler.tasks.jobs_place",
    ignore_result=True,
    soft_time_limit=PLACE_SOFT_TIME_LIMIT_S,
    time_limit=PLACE_TIME_LIMIT_S,
)
def jobs_place() -> dict:
    """Place every pending job (on submission, when GPUs free up, and every minute from beat)."""
    return services.jobs_place().as_dict()


@shared_task(name="scheduler.tasks.jobs_requeue_unreachable", ignore_result=True)
def jobs_requeue_unreachable() -> list[int]:
    """Send placed jobs on unreachable nodes back to the queue."""
    return services.jobs_requeue_unreachable()


@shared_task(name="scheduler.tasks.placement_launch", ignore_result=True)
def placement_launch(placement_id: int) -> str | None:
    """Launch one offer placement's instances (live mode); a duplicate delivery does nothing."""
    placement = launch.placement_launch(placement_id=placement_id)
    return placement.launch_status if placement else None
