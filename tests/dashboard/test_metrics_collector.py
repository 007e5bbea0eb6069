"""The app's figures behind /metrics (dashboard.metrics): hand-checked values from known rows, a bounded number
of queries whatever the rows, a broker that fails dropping only the queue series, hostile names escaped.

``metrics_world`` builds the known rows; tests/dashboard/test_metrics_prometheus.py reuses it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from kombu import Connection
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from billing.choices import DeliveryStatus
from billing.models import ReportDelivery, ReportSubscription
from config.celery import app as celery_app
from core.choices import RunStatus
from dashboard.metrics import FleetdeckCollector
from dashboard.metrics_access import metrics_registry
from fleet.choices import TelemetrySourceKind
from fleet.telemetry.health import SourceRun, source_health_record
from scheduler.models import PlaceRun
from tests.billing.test_selectors import ledger_entry
from tests.factories import NodeFactory

HOSTILE_SOURCE = 'east "lab" \\ {x="1"} ü'  # a PromQL source's name: quotes, a backslash, braces, non-ASCII
HOSTILE_QUEUE = 'we"ird\\queue'
SHARD = TelemetrySourceKind.SCRAPE_SHARD


def metrics_world(now: datetime) -> None:
    """Known rows, as the workers would leave them (numbers checked by hand in the tests):

    shard 0/2: 5 runs, 3 failed, 150 samples, 5.5 s over 5 timed runs (last 0.5 s); shard 1/2: 1 late run,
    40 samples, 1.0 s; remote-write "prom": 2 runs, 30 samples, untimed; the hostile PromQL source: 1 run.
    Ledger: a node's hours at now-3h (complete, the newest such) and the current hour (partial: not counted).
    Placement runs: done 30 s and 90 s, failed 10 s, one queued. Report deliveries: 2 failed, 1 sent.
    """
    t0 = now - timedelta(minutes=10)
    runs = [(True, 100, 1.5), (False, 0, 0.5), (True, 50, 2.5), (False, 0, 0.5), (False, 0, 0.5)]
    for i, (ok, samples, seconds) in enumerate(runs):
        source_health_record(
            SourceRun(SHARD, "0/2", ok=ok, samples=samples, error="" if ok else "boom", duration_s=seconds),
            now=t0 + timedelta(seconds=30 * i),
        )
    source_health_record(SourceRun(SHARD, "1/2", ok=True, samples=40, late=True, duration_s=1.0), now=t0)
    for samples in (10, 20):
        source_health_record(SourceRun(TelemetrySourceKind.REMOTE_WRITE, "prom", ok=True, samples=samples), now=t0)
    source_health_record(
        SourceRun(
            TelemetrySourceKind.PROMQL, HOSTILE_SOURCE, ok=True, samples=0, newest_sample_at=t0 - timedelta(seconds=45)
        ),
        now=t0,
    )
    node = NodeFactory()
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    ledger_entry(node=node, hour=hour - timedelta(hours=3))
    ledger_entry(node=node, hour=hour - timedelta(hours=5))
    ledger_entry(node=node, hour=hour)  # the hour under way: booked, not complete
    start = now - timedelta(hours=1)
    for status, seconds in ((RunStatus.DONE, 30), (RunStatus.DONE, 90), (RunStatus.FAILED, 10)):
        PlaceRun.objects.create(status=status, started_at=start, finished_at=start + timedelta(seconds=seconds))
    PlaceRun.objects.create(status=RunStatus.QUEUED)
    subscription = ReportSubscription.objects.create(name="weekly", recipients=["ops@example.com"])
    for day, status in ((1, DeliveryStatus.FAILED), (8, DeliveryStatus.FAILED), (15, DeliveryStatus.SENT)):
        ReportDelivery.objects.create(
            subscription=subscription,
            period_start=date(2026, 11, day),
            period_end=date(2026, 11, day + 7),
            status=status,
        )


@pytest.fixture
def broker():
    """The test broker (its own Redis DB), empty before and after."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.flushdb()
    yield client
    client.flushdb()


def samples_of(registry_or_collector) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) → value, through the text exposition and prometheus_client's own parser."""
    from prometheus_client import CollectorRegistry

    if isinstance(registry_or_collector, CollectorRegistry):
        registry = registry_or_collector
    else:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(registry_or_collector)
    text = generate_latest(registry).decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found, name, **labels):
    return found[(name, tuple(sorted(labels.items())))]


NOW = datetime(2026, 12, 6, 14, 0, tzinfo=UTC)


@pytest.mark.django_db
def test_every_part_reads_the_known_rows(broker):
    metrics_world(NOW)
    for _ in range(3):
        celery_app.send_task("billing.tasks.ledger_update", queue="billing")
    found = samples_of(FleetdeckCollector(clock=lambda: NOW))

    shard = {"kind": "scrape-shard", "source": "0/2"}
    assert value(found, "fleetdeck_telemetry_source_runs_total", **shard) == 5
    assert value(found, "fleetdeck_telemetry_source_failures_total", **shard) == 3
    assert value(found, "fleetdeck_telemetry_samples_ingested_total", **shard) == 150
    assert value(found, "fleetdeck_telemetry_source_duration_seconds_count", **shard) == 5
    assert value(found, "fleetdeck_telemetry_source_duration_seconds_sum", **shard) == pytest.approx(5.5)
    assert value(found, "fleetdeck_telemetry_source_last_duration_seconds", **shard) == pytest.approx(0.5)
    other = {"kind": "scrape-shard", "source": "1/2"}
    assert value(found, "fleetdeck_telemetry_source_late_runs_total", **other) == 1
    assert value(found, "fleetdeck_telemetry_source_failures_total", **other) == 0
    remote = {"kind": "remote-write", "source": "prom"}
    assert value(found, "fleetdeck_telemetry_samples_ingested_total", **remote) == 30
    assert ("fleetdeck_telemetry_source_duration_seconds_count", tuple(sorted(remote.items()))) not in found
    hostile = {"kind": "promql", "source": HOSTILE_SOURCE}
    assert value(found, "fleetdeck_telemetry_source_lag_seconds", **hostile) == 45

    # Newest complete hour 11:00, ended 12:00; at 14:00 that is 2 h behind (14:00's own row is not complete).
    assert value(found, "fleetdeck_ledger_lag_seconds") == 7200
    assert (
        value(found, "fleetdeck_ledger_newest_complete_hour_timestamp_seconds")
        == datetime(2026, 12, 6, 11, tzinfo=UTC).timestamp()
    )

    assert value(found, "fleetdeck_placement_runs", status="done") == 2
    assert value(found, "fleetdeck_placement_runs", status="failed") == 1
    assert value(found, "fleetdeck_placement_runs", status="queued") == 1
    assert value(found, "fleetdeck_placement_runs", status="running") == 0
    assert value(found, "fleetdeck_placement_run_duration_seconds_count", status="done") == 2
    assert value(found, "fleetdeck_placement_run_duration_seconds_sum", status="done") == 120
    assert value(found, "fleetdeck_placement_run_duration_seconds_sum", status="failed") == 10

    assert value(found, "fleetdeck_report_deliveries", status="failed") == 2
    assert value(found, "fleetdeck_report_deliveries", status="sent") == 1
    assert value(found, "fleetdeck_report_deliveries", status="pending") == 0

    assert value(found, "fleetdeck_celery_queue_depth", queue="billing") == 3
    assert value(found, "fleetdeck_celery_queue_depth", queue="telemetry") == 0
    for part in ("telemetry", "ledger", "placement", "reports", "queues"):
        assert value(found, "fleetdeck_metrics_collector_up", part=part) == 1


@pytest.mark.django_db
def test_an_empty_ledger_has_no_lag_series_rather_than_a_made_up_one(broker):
    found = samples_of(FleetdeckCollector(clock=lambda: NOW))
    assert not [name for name, _ in found if name.startswith("fleetdeck_ledger_")]
    assert value(found, "fleetdeck_metrics_collector_up", part="ledger") == 1


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "redis://127.0.0.1:6379/9999", "nosuchtransport://x"])
def test_a_broken_broker_drops_only_the_queue_series(settings, url):
    metrics_world(NOW)
    settings.CELERY_BROKER_URL = url
    found = samples_of(FleetdeckCollector(clock=lambda: NOW))
    assert value(found, "fleetdeck_metrics_collector_up", part="queues") == 0
    assert not [name for name, _ in found if name.startswith("fleetdeck_celery_queue")]
    assert value(found, "fleetdeck_report_deliveries", status="failed") == 2
    assert value(found, "fleetdeck_ledger_lag_seconds") == 7200
    for part in ("telemetry", "ledger", "placement", "reports"):
        assert value(found, "fleetdeck_metrics_collector_up", part=part) == 1


@pytest.mark.django_db
def test_the_filesystem_broker_of_the_demo_is_read_too(settings, tmp_path):
    from config.embedded import filesystem_broker_options

    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = filesystem_broker_options(tmp_path)
    with Connection("filesystem://", transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS) as conn:
        queue = conn.SimpleQueue("reports")
        for i in range(2):
            queue.put({"message": i})
        queue.close()
    found = samples_of(FleetdeckCollector(clock=lambda: NOW))
    assert value(found, "fleetdeck_celery_queue_depth", queue="reports") == 2
    assert value(found, "fleetdeck_celery_queue_depth", queue="billing") == 0


@pytest.mark.django_db
def test_hostile_names_are_escaped_and_parse_back_exactly(settings, broker):
    settings.FLEETDECK_QUEUES = ("telemetry", HOSTILE_QUEUE)
    broker.lpush(HOSTILE_QUEUE, "m1", "m2")
    metrics_world(NOW)
    registry = metrics_registry()
    text = generate_latest(registry).decode()
    assert 'source="east \\"lab\\" \\\\ {x=\\"1\\"} ü"' in text  # escaped as the exposition format asks
    found = samples_of(registry)
    assert value(found, "fleetdeck_telemetry_source_runs_total", kind="promql", source=HOSTILE_SOURCE) == 1
    assert value(found, "fleetdeck_celery_queue_depth", queue=HOSTILE_QUEUE) == 2


@pytest.mark.django_db
def test_a_scrape_costs_the_same_few_queries_whatever_the_rows(broker):
    metrics_world(NOW)
    with CaptureQueriesContext(connection) as small:
        list(FleetdeckCollector(clock=lambda: NOW).collect())
    for i in range(20):
        source_health_record(SourceRun(SHARD, f"{i}/20", ok=i % 2 == 0, samples=i, duration_s=0.1), now=NOW)
        PlaceRun.objects.create(status=RunStatus.DONE, started_at=NOW, finished_at=NOW + timedelta(seconds=i))
    with CaptureQueriesContext(connection) as large:
        list(FleetdeckCollector(clock=lambda: NOW).collect())
    assert len(small) == len(large) == 4  # telemetry sources, ledger, placement runs, report deliveries
    assert all("fleet_gpu_sample" not in query["sql"] for query in large.captured_queries)


@pytest.mark.django_db
def test_a_shard_run_records_its_duration_for_the_summary():
    from fleet.models import TelemetrySourceHealth
    from fleet.telemetry.shards import shard_poll

    shard_poll(index=0, count=1, node_ids=[], scheduled_at=None, now=NOW)
    row = TelemetrySourceHealth.objects.get(kind=SHARD, name="0/1")
    assert (row.runs, row.duration_runs) == (1, 1)
    assert row.duration_total_s == row.duration_last_s
    assert 0 <= row.duration_last_s < 5
    found = samples_of(FleetdeckCollector(clock=lambda: NOW))
    assert value(found, "fleetdeck_telemetry_source_duration_seconds_count", kind="scrape-shard", source="0/1") == 1
