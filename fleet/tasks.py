"""Celery tasks of the fleet app. Task names start with ``fleet.tasks.inventory_`` or ``fleet.tasks.telemetry_``,
which routes them to the inventory and telemetry queues (settings.CELERY_TASK_ROUTES)."""
