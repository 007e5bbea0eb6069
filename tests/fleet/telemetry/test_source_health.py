"""Telemetry source health: one row per source, counts added atomically, errors kept to one safe line."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from fleet.choices import TelemetrySourceKind
from fleet.models import TelemetrySourceHealth
from fleet.telemetry.health import SourceRun, source_health_list, source_health_record


@pytest.mark.django_db
def test_runs_add_up_and_a_failure_keeps_the_last_success():
    now = timezone.now()
    shard = TelemetrySourceKind.SCRAPE_SHARD
    source_health_record(
        SourceRun(shard, "1/4", ok=True, samples=80, newest_sample_at=now - timedelta(seconds=3)), now=now
    )
    later = now + timedelta(seconds=15)
    source_health_record(SourceRun(shard, "1/4", ok=False, error="boom\r\nSet-Cookie: x", late=True), now=later)
    (row,) = source_health_list()
    assert (row.runs, row.failed_runs, row.late_runs, row.samples_total, row.samples_last) == (2, 1, 1, 80, 0)
    assert row.last_ok_at == now and row.last_run_at == later
    assert row.last_error == "boom Set-Cookie: x"  # one line: nothing a page or a mail header could split
    assert row.lag_s == pytest.approx(3.0)  # kept from the last run that stored something


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_never_lose_a_count():
    def record():
        try:
            for _ in range(25):
                source_health_record(SourceRun(TelemetrySourceKind.REMOTE_WRITE, "agent", ok=True, samples=2))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=record) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    row = TelemetrySourceHealth.objects.get(kind=TelemetrySourceKind.REMOTE_WRITE, name="agent")
    assert (row.runs, row.samples_total) == (100, 200)


@pytest.mark.django_db
def test_the_rate_is_samples_per_second_over_the_last_whole_window():
    t0 = timezone.now()
    kind = TelemetrySourceKind.REMOTE_WRITE
    source_health_record(SourceRun(kind, "prom", ok=True, samples=100), now=t0)
    source_health_record(SourceRun(kind, "prom", ok=True, samples=200), now=t0 + timedelta(seconds=30))
    assert TelemetrySourceHealth.objects.get().rate_per_s is None  # no whole window yet
    source_health_record(SourceRun(kind, "prom", ok=True, samples=50), now=t0 + timedelta(seconds=61))
    row = TelemetrySourceHealth.objects.get()
    assert row.rate_per_s == pytest.approx(300 / 61)
    assert (row.rate_window_start, row.rate_window_samples) == (t0 + timedelta(seconds=61), 50)
