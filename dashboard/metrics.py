"""The worker-side figures of the app's own /metrics, read from the database and the broker at scrape time.

Celery workers run in processes of their own, so they keep no in-memory metrics for the web to expose: what
they did is already recorded in rows (telemetry source health, the ledger, placement runs, report deliveries)
and the broker holds the queues. ``FleetdeckCollector`` reads those on every scrape, one bounded query per part
(whatever the number of rows: see tests/dashboard/test_metrics_collector.py), so every gunicorn process
answers the same figures. A part that fails (the broker down, say) drops only its own series and sets
``fleetdeck_metrics_collector_up{part=…}`` to 0; the others are still exposed. docs/metrics.md lists the series.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Q, Sum
from django.utils import timezone
from kombu import Connection
from kombu.exceptions import ChannelError
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily

from billing.choices import DeliveryStatus
from billing.models import LedgerEntry, ReportDelivery
from core.choices import RunStatus
from fleet.models import TelemetrySourceHealth
from scheduler.models import PlaceRun

logger = logging.getLogger(__name__)
HOUR = timedelta(hours=1)
BROKER_TIMEOUT_S = 2.0  # a broker that does not answer within this drops the queue series, not the scrape
QUEUE_NOT_FOUND = 404  # AMQP reply code of a passive declare of a queue the broker has never held


def _timestamp(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


def telemetry_families(now: datetime) -> Iterable[Metric]:
    """Runs, failures, late runs, samples, durations and lag of every telemetry source (one row each)."""
    labels = ["kind", "source"]
    runs = CounterMetricFamily(
        "fleetdeck_telemetry_source_runs", "Runs (or requests) of a telemetry source.", labels=labels
    )
    failures = CounterMetricFamily(
        "fleetdeck_telemetry_source_failures", "Runs of a telemetry source that failed.", labels=labels
    )
    late = CounterMetricFamily(
        "fleetdeck_telemetry_source_late_runs", "Runs that started after their poll slot had passed.", labels=labels
    )
    samples = CounterMetricFamily(
        "fleetdeck_telemetry_samples_ingested", "Samples a telemetry source stored.", labels=labels
    )
    duration = SummaryMetricFamily(
        "fleetdeck_telemetry_source_duration_seconds",
        "Seconds the timed runs of a telemetry source took (scrape shards time theirs).",
        labels=labels,
    )
    last_duration = GaugeMetricFamily(
        "fleetdeck_telemetry_source_last_duration_seconds", "Seconds the last timed run took.", labels=labels
    )
    lag = GaugeMetricFamily(
        "fleetdeck_telemetry_source_lag_seconds", "How far behind its run its newest stored sample was.", labels=labels
    )
    last_run = GaugeMetricFamily(
        "fleetdeck_telemetry_source_last_run_timestamp_seconds", "When the source last ran (Unix time).", labels=labels
    )
    last_ok = GaugeMetricFamily(
        "fleetdeck_telemetry_source_last_success_timestamp_seconds",
        "When the source last ran without failing (Unix time).",
        labels=labels,
    )
    rows = TelemetrySourceHealth.objects.order_by("kind", "name").values_list(
        "kind",
        "name",
        "runs",
        "failed_runs",
        "late_runs",
        "samples_total",
        "duration_runs",
        "duration_total_s",
        "duration_last_s",
        "lag_s",
        "last_run_at",
        "last_ok_at",
    )
    for kind, name, n_runs, n_failed, n_late, n_samples, n_timed, total_s, last_s, lag_s, run_at, ok_at in rows:
        key = [kind, name]
        runs.add_metric(key, n_runs)
        failures.add_metric(key, n_failed)
        late.add_metric(key, n_late)
        samples.add_metric(key, n_samples)
        if n_timed:
            duration.add_metric(key, count_value=n_timed, sum_value=total_s)
        for family, value in (
            (last_duration, last_s),
            (lag, lag_s),
            (last_run, _timestamp(run_at)),
            (last_ok, _timestamp(ok_at)),
        ):
            if value is not None:
                family.add_metric(key, value)
    return [runs, failures, late, samples, duration, last_duration, lag, last_run, last_ok]


def ledger_families(now: datetime) -> Iterable[Metric]:
    """How far the hourly cost ledger is behind: the newest complete hour it holds, and the time since it ended.

    A complete hour is one that has ended (its start before the current hour's); the ledger also books the
    current hour as it goes, which does not count. No series when the ledger holds no complete hour yet.
    """
    current_hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    newest = LedgerEntry.objects.filter(hour__lt=current_hour).aggregate(newest=Max("hour"))["newest"]
    hour = GaugeMetricFamily(
        "fleetdeck_ledger_newest_complete_hour_timestamp_seconds",
        "Start of the newest complete UTC hour the cost ledger holds (Unix time).",
    )
    lag = GaugeMetricFamily(
        "fleetdeck_ledger_lag_seconds", "Seconds since the newest complete hour in the cost ledger ended."
    )
    if newest is not None:
        hour.add_metric([], newest.timestamp())
        lag.add_metric([], max(0.0, (now - (newest + HOUR)).total_seconds()))
    return [hour, lag]


def placement_families(now: datetime) -> Iterable[Metric]:
    """Placement runs asked for through the page or the API, by status, and how long the finished ones took."""
    runs = GaugeMetricFamily("fleetdeck_placement_runs", "Placement runs recorded, by status.", labels=["status"])
    duration = SummaryMetricFamily(
        "fleetdeck_placement_run_duration_seconds",
        "Seconds from start to finish of the placement runs that finished, by status.",
        labels=["status"],
    )
    timed = Q(started_at__isnull=False, finished_at__isnull=False)
    took = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    by_status = {
        row["status"]: row
        for row in PlaceRun.objects.order_by()
        .values("status")
        .annotate(n=Count("pk"), timed=Count("pk", filter=timed), took=Sum(took, filter=timed))
    }
    for status in RunStatus.values:
        row = by_status.get(status, {"n": 0, "timed": 0, "took": None})
        runs.add_metric([status], row["n"])
        if status in (RunStatus.DONE, RunStatus.FAILED):
            seconds = row["took"].total_seconds() if row["took"] is not None else 0.0
            duration.add_metric([status], count_value=row["timed"], sum_value=seconds)
    return [runs, duration]


def report_families(now: datetime) -> Iterable[Metric]:
    """Cost report deliveries by status (failed ones are retried; sending ones may be stuck)."""
    deliveries = GaugeMetricFamily(
        "fleetdeck_report_deliveries", "Cost report deliveries recorded, by status.", labels=["status"]
    )
    counts = dict(ReportDelivery.objects.order_by().values_list("status").annotate(n=Count("pk")))
    for status in DeliveryStatus.values:
        deliveries.add_metric([status], counts.get(status, 0))
    return [deliveries]


def broker_queue_depths(url: str, queues: Iterable[str], transport_options: dict | None = None) -> dict[str, int]:
    """Messages waiting in each Celery queue, from the broker (Redis: LLEN; filesystem: files; AMQP: passive
    declare). A queue the broker does not hold has none waiting. Raises when the broker cannot be reached."""
    options = {
        **(transport_options or {}),
        "socket_timeout": BROKER_TIMEOUT_S,
        "socket_connect_timeout": BROKER_TIMEOUT_S,
    }
    depths: dict[str, int] = {}
    with Connection(url, connect_timeout=BROKER_TIMEOUT_S, transport_options=options) as conn:
        conn.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT_S)
        for queue in queues:
            # A channel per queue: AMQP closes the channel of a passive declare that found no queue.
            with conn.channel() as channel:
                try:
                    depths[queue] = int(channel.queue_declare(queue=queue, passive=True).message_count)
                except ChannelError as exc:
                    if getattr(exc, "code", None) != QUEUE_NOT_FOUND and "NOT_FOUND" not in str(exc):
                        raise
                    depths[queue] = 0
    return depths


def queue_families(now: datetime) -> Iterable[Metric]:
    """Messages waiting in every Celery queue of FLEETDECK_QUEUES (no series when the broker is unreachable)."""
    depth = GaugeMetricFamily("fleetdeck_celery_queue_depth", "Messages waiting in a Celery queue.", labels=["queue"])
    depths = broker_queue_depths(
        settings.CELERY_BROKER_URL, settings.FLEETDECK_QUEUES, getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
    )
    for queue, count in depths.items():
        depth.add_metric([queue], count)
    return [depth]


PARTS: tuple[tuple[str, Callable[[datetime], Iterable[Metric]]], ...] = (
    ("telemetry", telemetry_families),
    ("ledger", ledger_families),
    ("placement", placement_families),
    ("reports", report_families),
    ("queues", queue_families),
)


class FleetdeckCollector:
    """A prometheus_client collector over PARTS: each part read on its own, a failing one reported, not raised."""

    def __init__(self, parts=PARTS, *, clock: Callable[[], datetime] = timezone.now):
        self.parts = parts
        self.clock = clock

    def collect(self) -> Iterable[Metric]:
        """Every part's families, then ``fleetdeck_metrics_collector_up`` and ``…_duration_seconds`` per part."""
        up = GaugeMetricFamily(
            "fleetdeck_metrics_collector_up",
            "1 when this scrape read the part's figures; 0 when reading them failed (its series are missing).",
            labels=["part"],
        )
        seconds = GaugeMetricFamily(
            "fleetdeck_metrics_collector_duration_seconds",
            "Seconds this scrape took to read the part.",
            labels=["part"],
        )
        now = self.clock()
        for name, read in self.parts:
            started = time.perf_counter()
            try:
                families = list(read(now))
            except Exception as exc:  # noqa: BLE001 - one part failing must not fail the scrape; logged and shown
                # One line per scrape, no traceback: a broker down for an hour must not flood the log.
                logger.warning("metrics: could not read the %s figures: %s: %s", name, type(exc).__name__, exc)
                up.add_metric([name], 0)
            else:
                yield from families
                up.add_metric([name], 1)
            seconds.add_metric([name], time.perf_counter() - started)
        yield up
        yield seconds
