"""The billing app's beat schedule entries (created if missing; editable in the admin afterwards)."""


def billing_schedules_sync() -> None:
    """Ensure beat runs the billing app's periodic tasks."""
