"""PromQL sources: query_range read into samples at the step times, idempotent, and every bad answer isolated."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from fleet.choices import HealthEventKind, TelemetrySourceKind
from fleet.models import GPU, HealthEvent, Node, PromQLSource, TelemetrySourceHealth
from fleet.telemetry import fetch
from fleet.telemetry.promql import METRICS, promql_read_all, promql_source_read, read_window
from tests.factories import GPUFactory, NodeFactory, SiteFactory
from tests.fleet.telemetry.fake_prometheus import FakePrometheus, gpu_labels

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 23, 12, 0, 7, tzinfo=UTC)
UUID_A = "GPU-a0000000-0000-0000-0000-000000000001"
UUID_B = "GPU-b0000000-0000-0000-0000-000000000002"
UUID_C = "GPU-c0000000-0000-0000-0000-000000000003"
# TELEMETRY_POLL_INTERVAL_S 15, settle 30 s, backfill 600 s: from 11:50:15 to 11:59:30.
FIRST = datetime(2026, 11, 23, 11, 50, 15, tzinfo=UTC)
LAST = datetime(2026, 11, 23, 11, 59, 30, tzinfo=UTC)
STEPS = 38


@pytest.fixture(autouse=True)
def _promql_settings(settings):
    settings.TELEMETRY_POLL_INTERVAL_S = 15
    settings.TELEMETRY_PROMQL_SETTLE_S = 30
    settings.TELEMETRY_PROMQL_BACKFILL_S = 600


SAMPLES_SQL = "SELECT gpu_id, ts, util_pct, power_w, mem_used_mib, temp_c FROM fleet_gpu_sample"


def samples(gpu_id=None):
    with connection.cursor() as cursor:
        if gpu_id is None:
            cursor.execute(f"{SAMPLES_SQL} ORDER BY gpu_id, ts")
        else:
            cursor.execute(f"{SAMPLES_SQL} WHERE gpu_id = %s ORDER BY ts", [gpu_id])
        return cursor.fetchall()


@pytest.fixture
def fake_prometheus():
    """Start FakePrometheus servers: ``fake_prometheus()``; all are stopped at teardown."""
    servers = []

    def start() -> FakePrometheus:
        servers.append(FakePrometheus())
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def serve_gpus(prom, gpus):
    """gpus: (uuid, index, hostname, {metric: value}) each."""
    for uuid, index, hostname, values in gpus:
        for metric, value in values.items():
            prom.series.setdefault(metric, []).append((gpu_labels(uuid, index, hostname), value))


VALUES = {
    "DCGM_FI_DEV_GPU_UTIL": 87,
    "DCGM_FI_DEV_POWER_USAGE": 612.5,
    "DCGM_FI_DEV_GPU_TEMP": 71,
    "DCGM_FI_DEV_FB_USED": 40000,
    "DCGM_FI_DEV_FB_FREE": 41920,
}


@pytest.fixture
def world(fake_prometheus):
    prom = fake_prometheus()
    site = SiteFactory()
    node = NodeFactory(site=site, name="n1")
    gpu_a = GPUFactory(node=node, index=0, uuid=UUID_A)
    serve_gpus(
        prom,
        [
            (UUID_A, 0, "n1", VALUES),
            (UUID_B, 1, "n1", {**VALUES, "DCGM_FI_DEV_GPU_UTIL": 5, "DCGM_FI_DEV_POWER_USAGE": 70.25}),
            (UUID_C, 0, "not-a-node-here", VALUES),
        ],
    )
    source = PromQLSource.objects.create(name="prom", site=site, url=prom.url, selector='job="dcgm"')
    return prom, source, node, gpu_a


def test_read_stores_every_step_and_registers_gpus_by_hostname(world):
    prom, source, node, gpu_a = world
    report = promql_source_read(source, now=NOW)
    assert report.ok, report.error
    assert report.samples_added == 2 * STEPS
    assert report.gpus_created == 1
    gpu_b = GPU.objects.get(uuid=UUID_B)
    assert gpu_b.node_id == node.pk and gpu_b.index == 1 and gpu_b.memory_mib == 81920
    assert not GPU.objects.filter(uuid=UUID_C).exists()
    assert report.skipped["GPU unknown and no node of the site is named by its Hostname label"] == STEPS
    rows = samples(gpu_a.pk)
    assert len(rows) == STEPS and rows[0][1] == FIRST and rows[-1][1] == LAST
    assert {r[2:] for r in rows} == {(87, 612.5, 40000.0, 71)}
    assert {r[2:] for r in samples(gpu_b.pk)} == {(5, 70.25, 40000.0, 71)}
    assert all((r[1] - FIRST).total_seconds() % 15 == 0 for r in rows)
    source.refresh_from_db()
    assert (source.read_until, source.last_success_at, source.consecutive_failures) == (LAST, NOW, 0)
    health = TelemetrySourceHealth.objects.get(kind=TelemetrySourceKind.PROMQL, name="prom")
    assert (health.runs, health.failed_runs, health.samples_last) == (1, 0, 2 * STEPS)
    assert health.lag_s == (NOW - LAST).total_seconds()
    node.refresh_from_db()
    assert node.last_seen == LAST
    # One query per stored metric, with the selector, on the step grid.
    assert len(prom.requests) == len(METRICS)
    path, params, auth = prom.requests[0]
    assert path == "/api/v1/query_range" and auth is None
    assert {p["query"] for _, p, _ in prom.requests} == {f'{m}{{job="dcgm"}}' for m in METRICS}
    assert (params["start"], params["end"], params["step"]) == (
        str(int(FIRST.timestamp())),
        str(int(LAST.timestamp())),
        "15",
    )


def test_reading_a_range_again_stores_nothing_twice(world):
    prom, source, node, gpu_a = world
    promql_source_read(source, now=NOW)
    before = samples()
    PromQLSource.objects.filter(pk=source.pk).update(read_until=None)
    source.refresh_from_db()
    again = promql_source_read(source, now=NOW)
    assert again.ok and again.samples_added == 0 and again.gpus_created == 0
    assert samples() == before


def test_next_run_reads_only_the_new_steps(world):
    prom, source, node, gpu_a = world
    promql_source_read(source, now=NOW)
    prom.requests.clear()
    later = promql_source_read(source, now=NOW + timedelta(seconds=31))
    assert later.ok and later.samples_added == 2 * 2  # 11:59:45 and 12:00:00
    assert prom.requests[0][1]["start"] == str(int(LAST.timestamp()) + 15)
    source.refresh_from_db()
    assert source.read_until == LAST + timedelta(seconds=30)
    # Nothing new has settled: no request at all.
    prom.requests.clear()
    assert promql_source_read(source, now=NOW + timedelta(seconds=32)).ok
    assert prom.requests == []


def test_window_is_bounded_after_a_long_outage(world):
    prom, source, node, gpu_a = world
    source.read_until = NOW - timedelta(days=3)
    window = read_window(source, NOW)
    assert window.start == int(FIRST.timestamp()) and window.end == int(LAST.timestamp())


def test_token_from_an_allowed_reference_is_sent(world, monkeypatch):
    prom, source, node, gpu_a = world
    monkeypatch.setenv("FLEETDECK_PROM_TOKEN", "s3cret-token")
    source.token_ref = "env:FLEETDECK_PROM_TOKEN"
    source.save()
    assert promql_source_read(source, now=NOW).ok
    assert {auth for _, _, auth in prom.requests} == {"Bearer s3cret-token"}


def test_unresolvable_token_fails_without_a_request(world):
    prom, source, node, gpu_a = world
    PromQLSource.objects.filter(pk=source.pk).update(token_ref="env:AWS_SECRET_ACCESS_KEY")  # bypasses validation
    source.refresh_from_db()
    report = promql_source_read(source, now=NOW)
    assert not report.ok and "refused" in report.error
    assert prom.requests == []


def test_health_events_are_recorded_once(world):
    prom, source, node, gpu_a = world
    cut = int(FIRST.timestamp()) + 5 * 15
    prom.series["DCGM_FI_DEV_XID_ERRORS"] = [(gpu_labels(UUID_A, 0, "n1"), lambda ts: 79 if ts >= cut else 0)]
    assert promql_source_read(source, now=NOW).ok
    PromQLSource.objects.filter(pk=source.pk).update(read_until=None)
    source.refresh_from_db()
    assert promql_source_read(source, now=NOW).ok
    events = list(HealthEvent.objects.filter(gpu=gpu_a, kind=HealthEventKind.XID))
    assert [(e.code, e.occurred_at) for e in events] == [(79, datetime.fromtimestamp(cut, tz=UTC))]


def test_bad_values_are_counted_and_skipped_the_good_kept(world):
    prom, source, node, gpu_a = world
    start = int(FIRST.timestamp())
    bad = {start: "NaN", start + 15: "+Inf", start + 30: "-Inf", start + 45: "hot", start + 60: 42}
    prom.series["DCGM_FI_DEV_GPU_UTIL"] = [(gpu_labels(UUID_A, 0, "n1"), lambda ts: bad.get(ts, 50))]
    body = json.dumps(
        {
            "status": "success",
            "data": {
                "resultType": "matrix",
                "result": [
                    {"metric": {"UUID": UUID_A, "gpu": "0", "Hostname": "n1"}, "values": [[start, "612"]]},
                    {"metric": {"bad label": "x"}, "values": [[start, "1"]]},
                    {"metric": "not a dict", "values": []},
                    {"metric": {"UUID": UUID_A, "gpu": "0"}, "values": [[start + 7, "1"], [start, 1], "x"]},
                    {"metric": {"Hostname": "n1"}, "values": [[start, "1"]]},
                ],
            },
        }
    )
    prom.bodies["DCGM_FI_DEV_POWER_USAGE"] = body.encode()
    report = promql_source_read(source, now=NOW)
    assert report.ok, report.error
    assert report.skipped["NaN or Inf value"] == 3
    assert report.skipped["value is not a number"] == 2  # "hot" and the number sent unquoted
    assert report.skipped["malformed labels"] == 1 and report.skipped["malformed series"] == 1
    assert report.skipped["timestamp off the step grid"] == 1 and report.skipped["malformed value"] == 1
    assert report.skipped["series without a usable UUID or gpu label"] == 1
    rows = {r[1]: r for r in samples(gpu_a.pk)}
    assert len(rows) == STEPS
    assert rows[FIRST][2] is None and rows[FIRST][3] == 612.0  # NaN util: no value, not a fake one
    assert rows[FIRST + timedelta(seconds=60)][2] == 42 and rows[LAST][2] == 50


BIG = 17 * 1024 * 1024


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: p.bodies.__setitem__("DCGM_FI_DEV_GPU_TEMP", b"<html>oops</html>"), "answer is not JSON"),
        (lambda p: p.bodies.__setitem__("DCGM_FI_DEV_GPU_TEMP", b"[1, 2]"), "not a Prometheus API object"),
        (
            lambda p: p.bodies.__setitem__(
                "DCGM_FI_DEV_GPU_TEMP",
                json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error near SECRET"}).encode(),
            ),
            "query refused by the engine (bad_data)",
        ),
        (
            lambda p: p.bodies.__setitem__(
                "DCGM_FI_DEV_GPU_TEMP", json.dumps({"status": "error", "errorType": "x" * 99}).encode()
            ),
            "query refused by the engine (unknown)",
        ),
        (
            lambda p: p.bodies.__setitem__(
                "DCGM_FI_DEV_GPU_TEMP", json.dumps({"status": "success", "data": {"resultType": "vector"}}).encode()
            ),
            "expected a matrix result, got vector",
        ),
        (
            lambda p: p.bodies.__setitem__(
                "DCGM_FI_DEV_GPU_TEMP", json.dumps({"status": "success", "data": {"resultType": "SECRET"}}).encode()
            ),
            "expected a matrix result, got something else",
        ),
        (
            lambda p: p.bodies.__setitem__(
                "DCGM_FI_DEV_GPU_TEMP", json.dumps({"status": "success", "data": {"resultType": "matrix"}}).encode()
            ),
            "matrix result is not a list",
        ),
        (lambda p: p.bodies.__setitem__("DCGM_FI_DEV_GPU_TEMP", b'{"status": "ok"}'), "no status 'success'"),
        (lambda p: p.bodies.__setitem__("DCGM_FI_DEV_GPU_TEMP", b'{"status": "success"}'), "no data object"),
        (lambda p: p.bodies.__setitem__("DCGM_FI_DEV_GPU_TEMP", b"[" * 100_000), "answer is not JSON"),
        (lambda p: p.statuses.__setitem__("DCGM_FI_DEV_GPU_TEMP", 503), "HTTP 503 Service Unavailable"),
        (
            lambda p: p.redirects.__setitem__("DCGM_FI_DEV_GPU_TEMP", "http://127.0.0.1:1/steal"),
            "redirect refused",
        ),
        (lambda p: p.hang_s.__setitem__("DCGM_FI_DEV_GPU_TEMP", 3), "timed out"),
        (
            lambda p: p.bodies.__setitem__("DCGM_FI_DEV_GPU_TEMP", b'{"pad": "' + b"x" * BIG + b'"}'),
            "response larger than",
        ),
    ],
    ids=[
        "non-json",
        "not-an-object",
        "status-error",
        "status-error-odd-type",
        "wrong-result-type",
        "unknown-result-type",
        "result-not-a-list",
        "status-not-success",
        "no-data",
        "deeply-nested",
        "http-503",
        "redirect",
        "slow",
        "huge",
    ],
)
def test_bad_answer_fails_its_source_only(world, fake_prometheus, settings, setup, message):
    settings.TELEMETRY_POLL_TIMEOUT_S = 1
    settings.TELEMETRY_FETCH_DEADLINE_S = 1
    prom, good, node, gpu_a = world
    bad_prom = fake_prometheus()
    serve_gpus(bad_prom, [(UUID_B, 1, "n1", VALUES)])
    setup(bad_prom)
    bad = PromQLSource.objects.create(name="bad", site=good.site, url=bad_prom.url)
    reports = {r.source: r for r in promql_read_all(now=NOW)}
    assert reports["prom"].ok and reports["prom"].samples_added == 2 * STEPS
    assert not reports["bad"].ok
    assert reports["bad"].error.startswith("DCGM_FI_DEV_GPU_TEMP: ") and message in reports["bad"].error
    assert "SECRET" not in reports["bad"].error and "127.0.0.1" not in reports["bad"].error
    bad.refresh_from_db()
    assert bad.read_until is None and bad.consecutive_failures == 1 and bad.last_error == reports["bad"].error
    health = TelemetrySourceHealth.objects.get(kind=TelemetrySourceKind.PROMQL, name="bad")
    assert (health.runs, health.failed_runs, health.last_error) == (1, 1, bad.last_error)
    # Nothing of the bad source's other, good metrics was stored: the range is read again next time.
    gpu_b = GPU.objects.get(uuid=UUID_B)  # registered by the good source
    assert {r[2:] for r in samples(gpu_b.pk)} == {(5, 70.25, 40000.0, 71)}
    assert fetch.MAX_RESPONSE_BYTES < BIG


def test_failures_count_up_and_success_resets(world, fake_prometheus):
    prom, source, node, gpu_a = world
    prom.statuses["DCGM_FI_DEV_GPU_UTIL"] = 500
    for _ in range(2):
        assert not promql_source_read(source, now=NOW).ok
    source.refresh_from_db()
    assert source.consecutive_failures == 2 and source.read_until is None
    del prom.statuses["DCGM_FI_DEV_GPU_UTIL"]
    assert promql_source_read(source, now=NOW).ok
    source.refresh_from_db()
    assert (source.consecutive_failures, source.last_error, source.read_until) == (0, "", LAST)


def test_disabled_sources_are_not_read(world):
    prom, source, node, gpu_a = world
    PromQLSource.objects.filter(pk=source.pk).update(enabled=False)
    assert promql_read_all(now=NOW) == []
    assert prom.requests == []


def test_unknown_gpu_with_a_node_elsewhere_is_not_registered_there(world):
    prom, source, node, gpu_a = world
    NodeFactory(name="not-a-node-here")  # another site's node: not this source's
    assert promql_source_read(source, now=NOW).ok
    assert not GPU.objects.filter(uuid=UUID_C).exists()
    assert Node.objects.filter(name="not-a-node-here").count() == 1


def test_beat_entry_and_task_read_the_sources(world, monkeypatch):
    from django_celery_beat.models import PeriodicTask

    from fleet.schedules import fleet_schedules_sync
    from fleet.tasks import telemetry_promql_read

    fleet_schedules_sync()
    entry = PeriodicTask.objects.get(name="telemetry PromQL sources")
    assert (entry.task, entry.queue, entry.interval.every) == ("fleet.tasks.telemetry_promql_read", "telemetry", 15)
    prom, source, node, gpu_a = world
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    # .apply() runs the registered task in this process (the test's transaction), as a worker would run it.
    telemetry_promql_read.apply()
    source.refresh_from_db()
    assert source.read_until == LAST and len(samples(gpu_a.pk)) == STEPS
