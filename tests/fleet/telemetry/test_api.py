"""Telemetry API: poll a node now; GPU, node and fleet series from raw samples and from roll-ups."""

from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from core.choices import Role
from fleet.telemetry.poll import poll_slot
from fleet.telemetry.storage import Sample, fleet_minute_rollup, hour_rollup, samples_ingest
from tests.factories import GPUFactory, NodeFactory
from tests.fleet.telemetry.conftest import dcgm_text

pytestmark = pytest.mark.django_db
UUID = "GPU-a0000000-0000-0000-0000-00000000000a"


@pytest.fixture
def polled_node(exporter):
    node = NodeFactory(telemetry_url=exporter.url("n"))
    GPUFactory(node=node, index=0, uuid=UUID)
    exporter.bodies["n"] = dcgm_text([{"uuid": UUID, "index": 0, "util": 64, "power": 410, "used": 1000, "free": 2}])
    return node


def test_poll_now_returns_what_was_ingested(api_client, polled_node):
    response = api_client(Role.OPERATOR).post(reverse("api:node-poll", args=[polled_node.pk]))
    assert response.status_code == 200, response.data
    assert (response.data["nodes_ok"], response.data["samples_added"], response.data["gpus_seen"]) == (1, 1, 1)
    assert response.data["errors"] == {}


def test_poll_now_reports_the_nodes_error(api_client, exporter):
    node = NodeFactory(telemetry_url=exporter.url("down"))
    exporter.statuses["down"] = 503
    response = api_client(Role.OPERATOR).post(reverse("api:node-poll", args=[node.pk]))
    assert response.status_code == 200
    assert "HTTP 503" in response.data["errors"][str(node.pk)]


def test_poll_now_permissions(api_client, polled_node):
    url = reverse("api:node-poll", args=[polled_node.pk])
    assert APIClient().post(url).status_code == 401
    assert api_client(Role.VIEWER).post(url).status_code == 403
    assert api_client(Role.ADMIN, read_only=True).post(url).status_code == 403


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"telemetry_url": ""}, "telemetry_url"), ({"state": "stopped"}, "state")]
)
def test_poll_now_refuses_nodes_that_are_not_polled(admin_api, kwargs, field):
    node = NodeFactory(**{"telemetry_url": "http://127.0.0.1:9/metrics", **kwargs})
    response = admin_api.post(reverse("api:node-poll", args=[node.pk]))
    assert response.status_code == 400 and field in response.data


def test_poll_missing_node_is_404(admin_api):
    assert admin_api.post(reverse("api:node-poll", args=[987654])).status_code == 404


def test_gpu_series_from_recent_raw_samples(admin_api):
    gpu = GPUFactory()
    now = poll_slot(timezone.now())
    samples_ingest(
        samples=[Sample(gpu.pk, now - timedelta(seconds=15 * i), 10 * (i % 2), 100, 200 + i, 50, 1) for i in range(8)]
    )
    response = admin_api.get(
        reverse("api:telemetry-gpu", args=[gpu.pk]), {"start": (now - timedelta(minutes=5)).isoformat(), "step": 60}
    )
    assert response.status_code == 200, response.data
    points = response.data["series"][0]["points"]
    assert response.data["step"] == 60 and response.data["series"][0]["uuid"] == gpu.uuid
    assert sum(1 for _ in points) >= 2
    assert all(set(p) >= {"t", "util_pct", "power_w", "mem_used_mib", "temp_c"} for p in points)
    assert max(p["power_w"] for p in points) <= 207


def test_gpu_series_from_hourly_rollups_when_older_than_raw_retention(admin_api, settings):
    gpu = GPUFactory()
    hour = (timezone.now() - timedelta(days=5)).replace(minute=0, second=0, microsecond=0)
    samples_ingest(samples=[Sample(gpu.pk, hour + timedelta(minutes=m), m, 100, 100 + m, 40, 1) for m in range(60)])
    hour_rollup(start=hour, end=hour + timedelta(hours=1))
    url = reverse("api:telemetry-gpu", args=[gpu.pk])
    minutes = admin_api.get(
        url, {"start": hour.isoformat(), "end": (hour + timedelta(hours=1)).isoformat(), "step": 60}
    )
    assert minutes.status_code == 200, minutes.data
    points = minutes.data["series"][0]["points"]
    assert len(points) == 60 and points[7]["util_pct"] == 7 and points[7]["power_w"] == 107
    hourly = admin_api.get(
        url, {"start": hour.isoformat(), "end": (hour + timedelta(hours=2)).isoformat(), "step": 3600}
    )
    assert [p["util_pct"] for p in hourly.data["series"][0]["points"]] == [pytest.approx(29.5)]


def hourly_only_rollup(gpu, hour, util: float, power: float) -> None:
    """A roll-up row without 1-minute arrays, as the demo seeds history (and an import of hourly data would)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO fleet_gpu_hour (hour, gpu_id, energy_wh, samples, idle_s, util_avg, util_max, power_avg_w,"
            " power_max_w, mem_used_max_mib, temp_max_c, minutes, util_1m, power_1m_w, mem_1m_mib, temp_1m_c)"
            " VALUES (%s, %s, %s, 240, 0, %s, %s, %s, %s, 1000, 50, '{}', '{}', '{}', '{}', '{}')",
            [hour, gpu.pk, power, util, util, power, power],
        )


def test_hours_without_raw_samples_are_read_from_their_rollups(admin_api):
    """Within raw retention: hour A (three hours ago) has only a roll-up without minute arrays → one point at
    A + 30 min with its hourly figures; hour B (two hours ago) has raw samples (util 70) and a roll-up saying
    util 10 → only the raw samples count. Five days ago, a roll-up without arrays is one point too (step 60)."""
    gpu = GPUFactory()
    now = timezone.now()
    a = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    b = a + timedelta(hours=1)
    hourly_only_rollup(gpu, a, util=42, power=321)
    hourly_only_rollup(gpu, b, util=10, power=100)
    samples_ingest(samples=[Sample(gpu.pk, b + timedelta(minutes=m), 70, 100, 500, 40, 1) for m in range(0, 60, 10)])
    url = reverse("api:telemetry-gpu", args=[gpu.pk])
    response = admin_api.get(url, {"start": a.isoformat(), "end": (b + timedelta(hours=1)).isoformat(), "step": 600})
    assert response.status_code == 200, response.data
    points = [(p["t"], p["util_pct"], p["power_w"]) for p in response.data["series"][0]["points"]]
    assert points[0] == ((a + timedelta(minutes=30)).isoformat().replace("+00:00", "Z"), 42, 321)
    assert [(util, power) for _, util, power in points[1:]] == [(70, 500)] * 6
    old = a - timedelta(days=5)
    hourly_only_rollup(gpu, old, util=55, power=250)
    response = admin_api.get(url, {"start": old.isoformat(), "end": (old + timedelta(hours=1)).isoformat(), "step": 60})
    assert [(p["util_pct"], p["power_w"]) for p in response.data["series"][0]["points"]] == [(55, 250)]


def test_node_series_has_one_series_per_gpu(admin_api):
    node = NodeFactory()
    gpus = [GPUFactory(node=node, index=i) for i in range(3)]
    samples_ingest(samples=[Sample(g.pk, poll_slot(timezone.now()), 50, 1, 1, 1, 1) for g in gpus])
    response = admin_api.get(reverse("api:telemetry-node", args=[node.pk]), {"step": 300})
    assert [s["index"] for s in response.data["series"]] == [0, 1, 2]
    assert all(len(s["points"]) == 1 for s in response.data["series"])


def test_fleet_series_by_provider(admin_api):
    gpu = GPUFactory()
    minute = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=2)
    samples_ingest(samples=[Sample(gpu.pk, minute, 40, 1, 500, 1, 1)])
    fleet_minute_rollup(start=minute, end=minute + timedelta(minutes=1))
    response = admin_api.get(reverse("api:telemetry-fleet"), {"start": (minute - timedelta(hours=1)).isoformat()})
    assert response.status_code == 200
    assert response.data["providers"]["aws"][0]["power_w"] == 500


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"step": 5}, "step"),
        ({"step": "fast"}, "step"),
        ({"start": "yesterday"}, "start"),
        ({"start": "2030-01-01T00:00:00Z", "end": "2029-01-01T00:00:00Z"}, "start"),
        ({"start": "2020-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z", "step": 15}, "step"),
    ],
)
def test_bad_series_queries_are_400(admin_api, query, field):
    gpu = GPUFactory()
    response = admin_api.get(reverse("api:telemetry-gpu", args=[gpu.pk]), query)
    assert response.status_code == 400 and field in response.data, response.data


def test_series_need_auth_and_view_permission(api_client, django_user_model):
    gpu = GPUFactory()
    url = reverse("api:telemetry-gpu", args=[gpu.pk])
    assert APIClient().get(url).status_code == 401
    assert api_client(Role.VIEWER).get(url).status_code == 200
    assert api_client(Role.VIEWER).get(reverse("api:telemetry-gpu", args=[999999])).status_code == 404


def test_gpus_list_carries_the_latest_reading(admin_api, polled_node):
    admin_api.post(reverse("api:node-poll", args=[polled_node.pk]))
    row = admin_api.get(reverse("api:gpu-list"), {"node": polled_node.pk}).data["results"][0]
    assert (row["util_pct"], row["power_w"], row["mem_used_mib"]) == (64, 410, 1000)
    assert row["sampled_at"] is not None
