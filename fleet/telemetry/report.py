"""What one telemetry poll did (PollReport) and the time slot its samples are stored under."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings


def poll_slot(now: datetime) -> datetime:
    """``now`` rounded down to the poll interval: the timestamp of this poll's samples."""
    interval = settings.TELEMETRY_POLL_INTERVAL_S
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % interval, tz=UTC)


def slot_time(now: datetime, scheduled_at: datetime | None) -> datetime:
    """The time a poll speaks for: when beat scheduled it, however late it runs; else ``now``.

    A scheduled time more than one interval from now (a run by hand, beat catching up after an outage) is
    not used: the samples are what the endpoints say now.
    """
    interval = timedelta(seconds=settings.TELEMETRY_POLL_INTERVAL_S)
    if scheduled_at is not None and abs(now - scheduled_at) < interval:
        return scheduled_at
    return now


@dataclass
class PollReport:
    """What one poll did."""

    slot: datetime
    nodes_polled: int = 0
    nodes_ok: int = 0
    samples_added: int = 0
    samples_rejected: int = 0
    gpus_seen: int = 0
    gpus_created: int = 0
    malformed_lines: int = 0
    health_events: int = 0
    marked_unreachable: list[int] = field(default_factory=list)
    nodes_skipped: list[int] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)
    warnings: dict[int, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """JSON-ready form (task results, the poll-now API answer)."""
        return {
            "slot": self.slot.isoformat(),
            "nodes_polled": self.nodes_polled,
            "nodes_ok": self.nodes_ok,
            "samples_added": self.samples_added,
            "samples_rejected": self.samples_rejected,
            "gpus_seen": self.gpus_seen,
            "gpus_created": self.gpus_created,
            "malformed_lines": self.malformed_lines,
            "health_events": self.health_events,
            "marked_unreachable": self.marked_unreachable,
            "nodes_skipped": self.nodes_skipped,
            "errors": {str(k): v for k, v in self.errors.items()},
            "warnings": {str(k): v for k, v in self.warnings.items()},
        }
