"""/metrics as Prometheus sees it: the real Prometheus (tests/prometheus.py) scrapes live_server with the bearer
token and queries the series back; a scrape without the token is refused; the Grafana dashboard names only
series the app exposes; under gunicorn's several workers the request counts add up across processes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from config.celery import app as celery_app
from tests.dashboard.test_metrics_collector import HOSTILE_SOURCE, metrics_world
from tests.prometheus import free_port

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "fleetdeck.json"
TOKEN = "prom-scrape-token-7f3a"


@pytest.fixture
def broker():
    """The test broker (its own Redis DB), empty before and after."""
    client = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    client.flushdb()
    yield client
    client.flushdb()


def scrape_config(job: str, target: str, *, token: str | None) -> dict:
    config = {
        "job_name": job,
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "metrics_path": "/metrics",
        "static_configs": [{"targets": [target]}],
    }
    if token is not None:
        config["authorization"] = {"type": "Bearer", "credentials": token}
    return config


def one(peer, expr: str) -> float:
    """The value of an instant query that must answer exactly one series."""
    result = peer.query(expr)
    assert len(result) == 1, f"{expr} answered {result!r}"
    return float(result[0]["value"][1])


def test_real_prometheus_scrapes_the_series_with_the_token(live_server, prometheus, settings, broker):
    settings.METRICS_TOKEN = TOKEN
    now = timezone.now()
    metrics_world(now)
    for _ in range(3):
        celery_app.send_task("billing.tasks.ledger_update", queue="billing")
    healthz_before = (
        REGISTRY.get_sample_value(
            "fleetdeck_http_request_duration_seconds_count", {"view": "healthz", "method": "GET", "status": "200"}
        )
        or 0.0
    )
    for _ in range(2):
        urllib.request.urlopen(f"{live_server.url}/healthz", timeout=5).close()  # noqa: S310 - the local server
    target = f"127.0.0.1:{urlsplit(live_server.url).port}"
    peer = prometheus(
        {
            "global": {"scrape_interval": "1s"},
            "scrape_configs": [
                scrape_config("fleetdeck", target, token=TOKEN),
                scrape_config("no-token", target, token=None),
                scrape_config("wrong-token", target, token=TOKEN + "x"),
            ],
        }
    )
    peer.wait_for(lambda: peer.query('fleetdeck_metrics_collector_up{job="fleetdeck"}'), what="first scrape stored")
    peer.wait_for(
        lambda: all(t["health"] != "unknown" for t in peer.targets()), what="every target scraped at least once"
    )
    health = {t["labels"]["job"]: t for t in peer.targets()}
    assert health["fleetdeck"]["health"] == "up", health["fleetdeck"]["lastError"]
    assert health["no-token"]["health"] == "down" and "401" in health["no-token"]["lastError"]
    assert health["wrong-token"]["health"] == "down" and "403" in health["wrong-token"]["lastError"]

    j = 'job="fleetdeck"'
    shard = f'{j},kind="scrape-shard",source="0/2"'
    assert one(peer, f"fleetdeck_telemetry_source_runs_total{{{shard}}}") == 5
    assert one(peer, f"fleetdeck_telemetry_source_failures_total{{{shard}}}") == 3
    assert one(peer, f"fleetdeck_telemetry_source_duration_seconds_sum{{{shard}}}") == pytest.approx(5.5)
    assert one(peer, f"fleetdeck_telemetry_source_duration_seconds_count{{{shard}}}") == 5
    assert one(peer, f"sum(fleetdeck_telemetry_samples_ingested_total{{{j}}})") == 150 + 40 + 30
    assert one(peer, f'fleetdeck_report_deliveries{{{j},status="failed"}}') == 2
    assert one(peer, f'fleetdeck_placement_runs{{{j},status="done"}}') == 2
    assert one(peer, f'fleetdeck_placement_run_duration_seconds_sum{{{j},status="done"}}') == 120
    assert one(peer, f'fleetdeck_celery_queue_depth{{{j},queue="billing"}}') == 3
    assert one(peer, f"min(fleetdeck_metrics_collector_up{{{j}}})") == 1
    # The newest complete ledger hour started 3 h before the current hour began, so it ended 2 h before it.
    newest_end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    lag = one(peer, f"fleetdeck_ledger_lag_seconds{{{j}}}")
    assert (now - newest_end).total_seconds() <= lag <= (timezone.now() - newest_end).total_seconds()
    assert one(peer, f'fleetdeck_http_request_duration_seconds_count{{{j},view="healthz",status="200"}}') == (
        healthz_before + 2
    )
    # Prometheus decodes the escaped hostile name back to the very same string.
    hostile = peer.query(f'fleetdeck_telemetry_source_runs_total{{{j},kind="promql"}}')
    assert [series["metric"]["source"] for series in hostile] == [HOSTILE_SOURCE]


def test_a_broker_that_is_down_still_lets_prometheus_scrape_the_rest(live_server, prometheus, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    metrics_world(timezone.now())
    target = f"127.0.0.1:{urlsplit(live_server.url).port}"
    peer = prometheus({"scrape_configs": [scrape_config("fleetdeck", target, token=None)]})
    peer.wait_for(lambda: peer.query("fleetdeck_metrics_collector_up"), what="first scrape stored")
    assert one(peer, 'fleetdeck_metrics_collector_up{part="queues"}') == 0
    assert one(peer, 'fleetdeck_metrics_collector_up{part="reports"}') == 1
    assert one(peer, 'fleetdeck_report_deliveries{status="failed"}') == 2
    assert peer.query("fleetdeck_celery_queue_depth") == []


# --- the Grafana dashboard ----------------------------------------------------------------------------------
PROMQL_WORDS = {
    # functions, aggregations and keywords the dashboard uses: everything else that looks like a name is a series
    "sum", "min", "max", "avg", "count", "by", "without", "rate", "increase", "histogram_quantile", "time",
    "label_values", "and", "or", "unless", "on", "ignoring", "offset",
}  # fmt: skip


def series_in(expr: str) -> set[str]:
    """The series names a PromQL expression reads: label matchers, ranges, strings and grouping removed."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\b\d+(\.\d+)?(ms|[smhdwy])?\b", "", expr)  # numbers and durations (offset 5m)
    names = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", expr))
    return {name for name in names if name not in PROMQL_WORDS}


def exposed_series(client) -> set[str]:
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    names = set()
    for family in text_string_to_metric_families(response.content.decode()):
        names.update(sample.name for sample in family.samples)
    return names


def dashboard_exprs(dashboard: dict) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


@pytest.mark.django_db
def test_the_grafana_dashboard_names_only_series_the_app_exposes(client, broker):
    metrics_world(timezone.now())
    client.get("/healthz")  # the request histogram has series once a request was timed
    dashboard = json.loads(DASHBOARD.read_text())
    exposed = exposed_series(client)
    exprs = dashboard_exprs(dashboard)
    assert exprs
    used = set()
    for expr in exprs:
        names = series_in(expr)
        assert names, f"{expr!r} reads no series"
        assert names <= exposed, f"{expr!r} names series /metrics does not expose: {names - exposed}"
        used |= names
    families = {
        "fleetdeck_http_request_duration_seconds_bucket",  # request latency
        "fleetdeck_telemetry_source_duration_seconds_sum",  # poll shard durations
        "fleetdeck_telemetry_source_failures_total",  # … and failures
        "fleetdeck_telemetry_samples_ingested_total",
        "fleetdeck_ledger_lag_seconds",
        "fleetdeck_celery_queue_depth",
        "fleetdeck_placement_runs",
        "fleetdeck_report_deliveries",
        "fleetdeck_metrics_collector_up",
    }
    assert families <= used, f"no panel for {families - used}"


def test_the_grafana_dashboard_is_a_current_one_on_a_prometheus_datasource_variable():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert all(target["datasource"]["uid"] == "${datasource}" for target in panel["targets"]), panel["title"]
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


def test_series_in_reads_names_not_labels_or_functions():
    expr = 'histogram_quantile(0.95, sum by (le, view) (rate(a_bucket{job=~"x", q="b{c}"}[5m]))) / b_total offset 5m'
    assert series_in(expr) == {"a_bucket", "b_total"}


# --- several gunicorn processes -----------------------------------------------------------------------------
def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - the local gunicorn
        response.read()
        return response.status


def _healthz_count(base: str) -> float:
    text = urllib.request.urlopen(f"{base}/metrics", timeout=10).read().decode()  # noqa: S310
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "fleetdeck_http_request_duration_seconds_count"
                and labels.get("view") == "healthz"
                and labels.get("status") == "200"
            ):
                return sample.value
    return 0.0


def _histogram_pids(folder: Path) -> set[int]:
    return {int(path.stem.rsplit("_", 1)[1]) for path in folder.glob("histogram_*.db")}


@pytest.mark.slow
def test_gunicorn_workers_requests_add_up_across_processes_and_survive_a_dead_worker(transactional_db, tmp_path):
    folder = tmp_path / "multiproc"
    db = connection.settings_dict
    env = {
        **os.environ,
        "DEBUG": "true",
        "FLEETDECK_ENV_FILE": "",
        "DATABASE_URL": f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}",
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
        "METRICS_TOKEN": "",
    }
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "gunicorn", "config.wsgi", "--config", "python:config.gunicorn"]
    args += ["--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "2", "--timeout", "60"]
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        sent = 0
        deadline = time.monotonic() + 60
        while True:  # ready once /healthz answers (every 200 counts)
            try:
                sent += _get(f"{base}/healthz") == 200
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.2)
        with ThreadPoolExecutor(max_workers=8) as pool:
            while len(_histogram_pids(folder)) < 2 and sent < 2000:  # until both workers have answered some
                sent += sum(status == 200 for status in pool.map(_get, [f"{base}/healthz"] * 40))
        assert len(_histogram_pids(folder)) == 2, "one worker answered everything"
        assert _healthz_count(base) == sent

        victim = min(_histogram_pids(folder))
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:  # gunicorn replaces it; the dead worker's requests still count
            try:
                if _healthz_count(base) == sent:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert folder.is_dir()  # the operator's folder: emptied at the next start, never removed
