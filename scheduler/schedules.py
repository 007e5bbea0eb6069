"""The scheduler app's beat schedule entries (created if missing; editable in the admin afterwards)."""


def scheduler_schedules_sync() -> None:
    """Ensure beat runs the scheduler app's periodic tasks."""
