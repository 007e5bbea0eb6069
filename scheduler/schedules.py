"""The scheduler app's beat schedule entries (created if missing; editable in the admin afterwards)."""

from core.services import periodic_task_ensure

JOBS_PLACE_INTERVAL_S = 60
JOBS_REQUEUE_INTERVAL_S = 60


def scheduler_schedules_sync() -> None:
    """Ensure beat runs the scheduler app's periodic tasks."""
    periodic_task_ensure(
        name="scheduler place pending jobs",
        task="scheduler.tasks.jobs_place",
        every_s=JOBS_PLACE_INTERVAL_S,
        queue="scheduler",
        description="Places every pending job on free GPUs or cloud offers, cheapest overall.",
    )
    periodic_task_ensure(
        name="scheduler re-queue jobs of unreachable nodes",
        task="scheduler.tasks.jobs_requeue_unreachable",
        every_s=JOBS_REQUEUE_INTERVAL_S,
        queue="scheduler",
        description="Sends placed jobs on nodes that became unreachable back to the queue.",
    )
