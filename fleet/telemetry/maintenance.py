"""Housekeeping run by beat: partitions ahead, hourly roll-ups of finished hours, retention."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from fleet.telemetry.storage import hour_rollup, partitions_ensure, raw_retention_apply, rollup_retention_apply

# Hours rolled up on every run: the one just finished and the one before, for samples that arrived late.
ROLLUP_HOURS_BACK = 2


@dataclass(frozen=True)
class MaintenanceReport:
    partitions_created: list[str]
    hour_rows: int
    partitions_dropped: int
    rollup_rows_deleted: int


def telemetry_maintain(*, now: datetime) -> MaintenanceReport:
    """Create the coming days' partitions, roll up the last finished hours, drop data past retention."""
    created = partitions_ensure(now=now)
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    rows = hour_rollup(start=this_hour - timedelta(hours=ROLLUP_HOURS_BACK), end=this_hour)
    dropped = raw_retention_apply(now=now)
    deleted = rollup_retention_apply(now=now)
    return MaintenanceReport(created, rows, dropped, deleted)
