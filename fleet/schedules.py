"""The fleet app's beat schedule entries (created if missing; editable in the admin afterwards)."""

from django.conf import settings

from core.services import periodic_task_ensure

TELEMETRY_ROLLUP_INTERVAL_S = 60
TELEMETRY_MAINTAIN_INTERVAL_S = 600


def fleet_schedules_sync() -> None:
    """Ensure beat syncs the cloud inventory, polls telemetry, rolls it up and keeps its storage tidy."""
    periodic_task_ensure(
        name="inventory sync",
        task="fleet.tasks.inventory_sync_all",
        every_s=settings.INVENTORY_SYNC_INTERVAL_S,
        queue="inventory",
        description="Lists the GPU instances of every enabled AWS and GCP provider.",
        first_run_at_start=True,
    )
    periodic_task_ensure(
        name="telemetry poll",
        task="fleet.tasks.telemetry_poll_all",
        every_s=settings.TELEMETRY_POLL_INTERVAL_S,
        queue="telemetry",
        description="Polls every node's /metrics endpoint (fleet agent or dcgm-exporter).",
    )
    periodic_task_ensure(
        name="telemetry PromQL sources",
        task="fleet.tasks.telemetry_promql_read",
        every_s=settings.TELEMETRY_POLL_INTERVAL_S,
        queue="telemetry",
        description="Reads dcgm-exporter series from every enabled PromQL source (Prometheus-compatible API).",
    )
    periodic_task_ensure(
        name="telemetry fleet roll-up",
        task="fleet.tasks.telemetry_rollup_minutes",
        every_s=TELEMETRY_ROLLUP_INTERVAL_S,
        queue="telemetry",
        description="Fleet-wide utilisation and power per minute for the overview charts.",
    )
    periodic_task_ensure(
        name="telemetry maintenance",
        task="fleet.tasks.telemetry_maintain",
        every_s=TELEMETRY_MAINTAIN_INTERVAL_S,
        queue="telemetry",
        description="Creates day partitions, rolls up finished hours, applies retention.",
    )
