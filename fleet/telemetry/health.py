"""The health of every telemetry source (scrape shards, remote-write, PromQL sources), one row each.

Each source calls ``source_health_record`` once per run or request; the overview reads the rows
(``source_health_list``) so an operator sees when telemetry falls behind: shards late or failing, the
remote-write rate, how far a PromQL source lags.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from fleet.choices import TelemetrySourceKind
from fleet.models import TelemetrySourceHealth
from fleet.telemetry.fetch import error_line

RATE_WINDOW_S = 60  # the rate is samples per second over a window of at least this long
UPSERT_SQL = """
INSERT INTO fleet_telemetrysourcehealth AS h (
    kind, name, last_run_at, last_ok_at, last_error, runs, late_runs, failed_runs, samples_total, samples_last, lag_s,
    rate_window_start, rate_window_samples, duration_last_s, duration_total_s, duration_runs
) VALUES (%(kind)s, %(name)s, %(now)s, %(ok_at)s, %(error)s, 1, %(late)s, %(failed)s, %(samples)s, %(samples)s,
          %(lag_s)s, %(now)s, %(samples)s, %(duration_s)s, COALESCE(%(duration_s)s, 0), %(timed)s)
ON CONFLICT (kind, name) DO UPDATE SET
    rate_per_s = CASE WHEN EXCLUDED.last_run_at - h.rate_window_start >= %(window)s
        THEN h.rate_window_samples / extract(epoch FROM EXCLUDED.last_run_at - h.rate_window_start)
        ELSE h.rate_per_s END,
    rate_window_samples = CASE WHEN EXCLUDED.last_run_at - h.rate_window_start >= %(window)s
        THEN EXCLUDED.samples_last ELSE h.rate_window_samples + EXCLUDED.samples_last END,
    rate_window_start = CASE WHEN EXCLUDED.last_run_at - h.rate_window_start >= %(window)s
        THEN EXCLUDED.last_run_at ELSE h.rate_window_start END,
    last_run_at = EXCLUDED.last_run_at,
    last_ok_at = COALESCE(EXCLUDED.last_ok_at, h.last_ok_at),
    last_error = EXCLUDED.last_error,
    runs = h.runs + 1,
    late_runs = h.late_runs + EXCLUDED.late_runs,
    failed_runs = h.failed_runs + EXCLUDED.failed_runs,
    samples_total = h.samples_total + EXCLUDED.samples_total,
    samples_last = EXCLUDED.samples_last,
    lag_s = COALESCE(EXCLUDED.lag_s, h.lag_s),
    duration_last_s = COALESCE(EXCLUDED.duration_last_s, h.duration_last_s),
    duration_total_s = h.duration_total_s + EXCLUDED.duration_total_s,
    duration_runs = h.duration_runs + EXCLUDED.duration_runs
"""


@dataclass(frozen=True)
class SourceRun:
    """What one run of a source did: whether it worked, what it stored, and how late it was."""

    kind: TelemetrySourceKind
    name: str
    ok: bool
    samples: int = 0
    error: str = ""
    late: bool = False
    newest_sample_at: datetime | None = None  # its newest stored sample: lag = now - this
    duration_s: float | None = None  # how long the run took, when the source times its runs (scrape shards)


def source_health_record(run: SourceRun, *, now: datetime | None = None) -> None:
    """Add one run to its source's row (created on first use), atomically: concurrent runs never lose a count."""
    now = now or timezone.now()
    lag_s = (now - run.newest_sample_at).total_seconds() if run.newest_sample_at is not None else None
    with connection.cursor() as cursor:
        cursor.execute(
            UPSERT_SQL,
            {
                "kind": str(run.kind),
                "name": error_line(run.name)[:100],
                "now": now,
                "ok_at": now if run.ok else None,
                "error": "" if run.ok else error_line(run.error)[:300],
                "late": int(run.late),
                "failed": int(not run.ok),
                "samples": max(0, int(run.samples)),
                "lag_s": max(0.0, lag_s) if lag_s is not None else None,
                "window": timedelta(seconds=RATE_WINDOW_S),
                "duration_s": max(0.0, float(run.duration_s)) if run.duration_s is not None else None,
                "timed": int(run.duration_s is not None),
            },
        )


def source_health_prune(kind: TelemetrySourceKind, *, keep: set[str]) -> int:
    """Delete ``kind``'s rows not named in ``keep`` (the shards of an earlier shard count, a PromQL source since
    deleted), so the overview never shows a source that no longer exists as silent. Returns rows deleted."""
    deleted, _ = TelemetrySourceHealth.objects.filter(kind=kind).exclude(name__in=keep).delete()
    return deleted


def source_health_list() -> list[TelemetrySourceHealth]:
    """Every source's row, by kind then name."""
    return list(TelemetrySourceHealth.objects.order_by("kind", "name"))


@dataclass(frozen=True)
class SourceStatus:
    """A source's row as the overview shows it: ``state`` is ok, failing (its last run failed) or silent (no run
    for STALE_POLLS poll intervals: a shard not scheduled, a Prometheus that stopped writing, a source not read);
    ``rate_per_s`` only while it is not silent."""

    row: TelemetrySourceHealth
    state: str
    rate_per_s: float | None


STALE_POLLS = 4


def source_status_list(*, now: datetime | None = None) -> list[SourceStatus]:
    """Every source with its state, failing and silent ones first."""
    now = now or timezone.now()
    silent_before = now - timedelta(seconds=STALE_POLLS * settings.TELEMETRY_POLL_INTERVAL_S)
    statuses = []
    for row in source_health_list():
        if row.last_run_at is None or row.last_run_at < silent_before:
            state = "silent"
        elif row.last_ok_at is None or row.last_ok_at < row.last_run_at:
            state = "failing"
        else:
            state = "ok"
        statuses.append(SourceStatus(row=row, state=state, rate_per_s=row.rate_per_s if state != "silent" else None))
    order = {"failing": 0, "silent": 1, "ok": 2}
    return sorted(statuses, key=lambda s: (order[s.state], s.row.kind, s.row.name))
