"""Telemetry storage: idempotent COPY ingest, hourly roll-ups with 1-minute arrays, fleet minutes, retention."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from fleet.telemetry.maintenance import telemetry_maintain
from fleet.telemetry.storage import (
    Sample,
    fleet_minute_rollup,
    hour_rollup,
    partitions_ensure,
    raw_retention_apply,
    rollup_retention_apply,
    samples_ingest,
)
from tests.factories import GPUFactory, NodeFactory, OnPremSiteFactory

pytestmark = pytest.mark.django_db
HOUR = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def fetch(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def test_ingest_is_idempotent_per_gpu_and_timestamp():
    gpu = GPUFactory()
    batch = [Sample(gpu.pk, HOUR + timedelta(seconds=15 * i), 50, 1000, 300.5, 60, 1980) for i in range(4)]
    assert samples_ingest(samples=batch) == 4
    assert samples_ingest(samples=batch) == 0
    # Duplicates inside one batch are stored once, too.
    assert samples_ingest(samples=[batch[0], batch[0], Sample(gpu.pk, HOUR + timedelta(hours=1), 1, 1, 1, 1, 1)]) == 1
    assert fetch("SELECT count(*) FROM fleet_gpu_sample")[0][0] == 5


def test_out_of_range_values_are_clamped_not_fatal():
    gpu = GPUFactory()
    assert samples_ingest(samples=[Sample(gpu.pk, HOUR, 1e9, None, None, -1e9, 99999)]) == 1
    assert fetch("SELECT util_pct, temp_c, sm_clock_mhz, power_w FROM fleet_gpu_sample") == [
        (32767, -32767, 32767, None)
    ]


def test_hour_rollup_energy_idle_and_minute_arrays():
    """A GPU at 600 W for the first 30 minutes and 100 W for the next 30, 4 samples a minute:
    energy = 600 W × 0.5 h + 100 W × 0.5 h = 350 Wh; the 100 W half is idle (util 2 % < 5 %): 1800 s."""
    gpu = GPUFactory()
    samples = []
    for minute in range(60):
        busy = minute < 30
        for k in range(4):
            ts = HOUR + timedelta(minutes=minute, seconds=15 * k)
            samples.append(
                Sample(
                    gpu.pk,
                    ts,
                    90 if busy else 2,
                    70000 if busy else 500,
                    600 if busy else 100,
                    75 if busy else 35,
                    1980,
                )
            )
    samples_ingest(samples=samples)
    assert hour_rollup(start=HOUR, end=HOUR + timedelta(hours=1)) == 1
    row = fetch(
        "SELECT samples, energy_wh, idle_s, util_avg, util_max, power_avg_w, power_max_w, mem_used_max_mib, "
        "temp_max_c, minutes, util_1m, power_1m_w FROM fleet_gpu_hour WHERE gpu_id = %s",
        [gpu.pk],
    )[0]
    samples_n, energy, idle, util_avg, util_max, p_avg, p_max, mem_max, temp_max, minutes, util_1m, power_1m = row
    assert samples_n == 240
    assert energy == pytest.approx(350.0)
    assert idle == 1800
    assert util_avg == pytest.approx(46.0) and util_max == 90
    assert p_avg == pytest.approx(350.0) and p_max == 600
    assert (mem_max, temp_max) == (70000, 75)
    assert minutes == list(range(60))
    assert util_1m[:30] == [90] * 30 and util_1m[30:] == [2] * 30
    assert power_1m[0] == 600 and power_1m[-1] == 100
    # Recomputing replaces, never adds.
    hour_rollup(start=HOUR, end=HOUR + timedelta(hours=1))
    assert fetch("SELECT count(*), sum(samples) FROM fleet_gpu_hour") == [(1, 240)]


def test_hour_rollup_with_gaps_keeps_only_minutes_with_data():
    gpu = GPUFactory()
    samples_ingest(samples=[Sample(gpu.pk, HOUR + timedelta(minutes=m), 50, None, 200, None, None) for m in (5, 6, 40)])
    hour_rollup(start=HOUR, end=HOUR + timedelta(hours=1))
    minutes, energy, mem = fetch("SELECT minutes, energy_wh, mem_used_max_mib FROM fleet_gpu_hour")[0]
    assert minutes == [5, 6, 40]
    assert energy == pytest.approx(3 * 200 / 60)  # three minutes of data at 200 W
    assert mem is None


def test_fleet_minute_rollup_by_provider_kind():
    onprem = NodeFactory(site=OnPremSiteFactory(), lifecycle="owned", external_id="")
    cloud = NodeFactory()
    g1, g2 = GPUFactory(node=onprem, index=0), GPUFactory(node=onprem, index=1)
    g3 = GPUFactory(node=cloud, index=0)
    minute = HOUR + timedelta(minutes=7)
    samples_ingest(
        samples=[
            Sample(g1.pk, minute, 100, None, 700, None, None),
            Sample(g1.pk, minute + timedelta(seconds=30), 80, None, 500, None, None),
            Sample(g2.pk, minute, 0, None, 60, None, None),
            Sample(g3.pk, minute, 50, None, 300, None, None),
        ]
    )
    assert fleet_minute_rollup(start=minute, end=minute + timedelta(minutes=1)) == 2
    rows = {kind: (gpus, util, power) for _, kind, gpus, util, power in fetch("SELECT * FROM fleet_fleet_minute")}
    assert rows["onprem"][0] == 2 and rows["onprem"][1] == pytest.approx((90 + 0) / 2)
    assert rows["onprem"][2] == pytest.approx(600 + 60)  # each GPU's mean power, summed
    assert rows["aws"] == (1, pytest.approx(50), pytest.approx(300))


def test_partitions_move_rows_out_of_default_and_retention_drops_them(settings):
    gpu = GPUFactory()
    day = datetime(2026, 11, 20, tzinfo=UTC)
    samples_ingest(samples=[Sample(gpu.pk, day + timedelta(hours=3), 1, 1, 1, 1, 1)])
    assert fetch("SELECT count(*) FROM fleet_gpu_sample_default")[0][0] == 1
    created = partitions_ensure(now=day, days_ahead=1)
    assert created == ["fleet_gpu_sample_p20261120", "fleet_gpu_sample_p20261121"]
    assert partitions_ensure(now=day, days_ahead=1) == []
    assert fetch("SELECT count(*) FROM fleet_gpu_sample_default")[0][0] == 0
    assert fetch("SELECT count(*) FROM fleet_gpu_sample_p20261120")[0][0] == 1
    settings.TELEMETRY_RAW_RETENTION_H = 48
    assert raw_retention_apply(now=day + timedelta(days=2, hours=1)) == 0  # the 20th ends < 48 h before
    assert raw_retention_apply(now=day + timedelta(days=3)) == 1
    assert fetch("SELECT count(*) FROM fleet_gpu_sample")[0][0] == 0


def test_rollup_retention(settings):
    gpu = GPUFactory()
    old = HOUR - timedelta(days=settings.TELEMETRY_ROLLUP_RETENTION_DAYS + 1)
    samples_ingest(samples=[Sample(gpu.pk, old, 1, 1, 1, 1, 1), Sample(gpu.pk, HOUR, 1, 1, 1, 1, 1)])
    hour_rollup(start=old, end=HOUR + timedelta(hours=1))
    assert fetch("SELECT count(*) FROM fleet_gpu_hour")[0][0] == 2
    assert rollup_retention_apply(now=HOUR) == 1
    assert fetch("SELECT hour FROM fleet_gpu_hour") == [(HOUR,)]


def test_maintenance_rolls_up_finished_hours_only():
    gpu = GPUFactory()
    now = HOUR + timedelta(hours=2, minutes=10)
    samples_ingest(samples=[Sample(gpu.pk, HOUR + timedelta(hours=h, minutes=5), 10, 1, 100, 1, 1) for h in range(3)])
    report = telemetry_maintain(now=now)
    assert report.hour_rows == 2
    assert [r[0] for r in fetch("SELECT hour FROM fleet_gpu_hour ORDER BY hour")] == [HOUR, HOUR + timedelta(hours=1)]
