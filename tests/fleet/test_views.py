"""The overview and node pages: counts from the database, filters, HTMX partials, no N+1."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from fleet.choices import HealthEventKind
from fleet.models import GPU, HealthEvent
from fleet.telemetry.storage import Sample, fleet_minute_rollup, samples_ingest
from tests.factories import GPUFactory, NodeFactory, OnPremSiteFactory, TeamFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def viewer_client(client, make_user):
    client.force_login(make_user("viewer"))
    return client


@pytest.fixture
def small_fleet():
    team = TeamFactory(slug="research", name="Research")
    dc = OnPremSiteFactory(name="dc-ams1")
    dgx = NodeFactory(name="ams1-dgx-001", site=dc, lifecycle="owned", external_id="", team=team)
    for i in range(8):
        GPUFactory(node=dgx, index=i)
    g5 = NodeFactory(name="use1-g5-001", instance_type="g5.xlarge")
    GPUFactory(node=g5, index=0, model="NVIDIA A10G", memory_mib=22888, power_limit_w=300)
    down = NodeFactory(name="use1-g5-002", instance_type="g5.xlarge", state="unreachable")
    GPUFactory(node=down, index=0, model="NVIDIA A10G", memory_mib=22888, power_limit_w=300)
    return {"dgx": dgx, "g5": g5, "down": down}


def test_overview_shows_counts_from_the_database(viewer_client, small_fleet):
    now = timezone.now()
    # The DGX reports: 6 GPUs busy at 500 W, 2 idle for an hour at 60 W; the g5 reported long ago.
    GPU.objects.filter(node=small_fleet["dgx"]).update(sampled_at=now, util_pct=80, power_w=500)
    GPU.objects.filter(node=small_fleet["dgx"], index__in=[6, 7]).update(
        util_pct=0, power_w=60, idle_since=now - timedelta(hours=1)
    )
    GPU.objects.filter(node=small_fleet["g5"]).update(sampled_at=now - timedelta(hours=2), util_pct=99, power_w=300)
    response = viewer_client.get(reverse("overview"))
    assert response.status_code == 200
    overview = response.context["overview"]
    assert (overview.gpus_total, overview.gpus_online, overview.nodes_total) == (10, 8, 3)
    assert (overview.gpus_idle, overview.gpus_unreachable) == (2, 1)
    assert overview.util_pct_now == 60.0  # (6 × 80 + 2 × 0) / 8 online GPUs
    assert overview.power_kw_now == 3.12  # 6 × 500 W + 2 × 60 W
    assert overview.gpus_by_provider == {"AWS": 2, "Google Cloud": 0, "On-prem": 8}
    assert overview.nodes_by_state["Unreachable"] == 1
    assert overview.gpus_by_model == [("NVIDIA H100 80GB HBM3", 8), ("NVIDIA A10G", 2)]
    html = response.content.decode()
    assert 'data-testid="gpus-total">10<' in html and "3.12 kW" in html
    assert response.context["idle_nodes"] == []  # only 2 of the DGX's 8 GPUs are idle


def test_overview_lists_fully_idle_nodes_longest_first(viewer_client, small_fleet):
    now = timezone.now()
    GPU.objects.filter(node=small_fleet["dgx"]).update(sampled_at=now, util_pct=1, idle_since=now - timedelta(hours=3))
    GPU.objects.filter(node=small_fleet["g5"]).update(sampled_at=now, util_pct=0, idle_since=now - timedelta(hours=5))
    idle = viewer_client.get(reverse("overview")).context["idle_nodes"]
    assert [(n.name, n.idle_gpus) for n in idle] == [("use1-g5-001", 1), ("ams1-dgx-001", 8)]


def test_overview_charts_fleet_series_by_provider(viewer_client, small_fleet):
    gpu = small_fleet["g5"].gpus.get()
    minute = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=30)
    samples_ingest(samples=[Sample(gpu.pk, minute, 70, 1, 250, 1, 1)])
    fleet_minute_rollup(start=minute, end=minute + timedelta(minutes=1))
    context = viewer_client.get(reverse("overview")).context
    assert context["power_chart"]["datasets"] == [{"label": "AWS", "data": [0.25]}]
    assert context["util_chart"]["datasets"][0]["data"] == [70.0]


def test_overview_htmx_refresh_returns_only_the_live_panel(viewer_client, small_fleet):
    response = viewer_client.get(reverse("overview"), HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="overview-live"')
    assert "<html" not in html


def test_overview_warns_when_no_worker_or_beat_was_seen(viewer_client):
    html = viewer_client.get(reverse("overview")).content.decode()
    assert "Background processes not seen recently" in html
    assert "Celery beat" in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, {"ams1-dgx-001", "use1-g5-001", "use1-g5-002"}),
        ({"provider": "onprem"}, {"ams1-dgx-001"}),
        ({"state": "unreachable"}, {"use1-g5-002"}),
        ({"gpu_model": "a10g"}, {"use1-g5-001", "use1-g5-002"}),
        ({"team": "research"}, {"ams1-dgx-001"}),
        ({"q": "g5-001"}, {"use1-g5-001"}),
        ({"idle": "true"}, {"use1-g5-001"}),
        ({"idle": "false"}, {"ams1-dgx-001", "use1-g5-002"}),
    ],
)
def test_node_list_filters(viewer_client, small_fleet, query, expected):
    GPU.objects.filter(node=small_fleet["g5"]).update(
        sampled_at=timezone.now(), util_pct=0, idle_since=timezone.now() - timedelta(hours=1)
    )
    response = viewer_client.get(reverse("node-list"), query)
    assert response.status_code == 200
    assert {n.name for n in response.context["page"]} == expected


def test_node_list_bad_filter_is_reported_not_a_500(viewer_client, small_fleet):
    response = viewer_client.get(reverse("node-list"), {"state": "melted", "ordering": "nope"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Some filters were not understood" in html
    assert "melted" in html


def test_node_list_sorting_by_gpu_count(viewer_client, small_fleet):
    response = viewer_client.get(reverse("node-list"), {"ordering": "-gpu_count"})
    assert [n.name for n in response.context["page"]][0] == "ams1-dgx-001"
    links = {link["key"]: link for link in response.context["sort_links"]}
    assert links["gpu_count"]["active"] and links["gpu_count"]["descending"]
    assert "ordering=gpu_count" in links["gpu_count"]["href"]  # clicking again flips it


def test_node_list_htmx_request_gets_the_table_partial(viewer_client, small_fleet):
    response = viewer_client.get(reverse("node-list"), {"provider": "onprem"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="node-table"')
    assert "ams1-dgx-001" in html and "use1-g5-001" not in html


def test_node_list_query_count_is_constant(viewer_client, small_fleet):
    viewer_client.get(reverse("node-list"))
    with CaptureQueriesContext(connection) as few:
        viewer_client.get(reverse("node-list"))
    for _ in range(10):
        GPUFactory(node=NodeFactory())
    with CaptureQueriesContext(connection) as many:
        viewer_client.get(reverse("node-list"))
    assert len(many) == len(few)


def test_node_detail_lists_gpus(viewer_client, small_fleet):
    response = viewer_client.get(reverse("node-detail", args=[small_fleet["dgx"].pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count("NVIDIA H100 80GB HBM3") == 8
    assert "dc-ams1" in html


def test_node_detail_shows_latest_readings_and_health_events(viewer_client, small_fleet):
    dgx = small_fleet["dgx"]
    gpu = dgx.gpus.get(index=3)
    GPU.objects.filter(pk=gpu.pk).update(sampled_at=timezone.now(), util_pct=93, power_w=655, temp_c=74)
    HealthEvent.objects.create(
        gpu=gpu, node=dgx, occurred_at=timezone.now(), kind=HealthEventKind.XID, code=79, message="XID 79"
    )
    html = viewer_client.get(reverse("node-detail", args=[dgx.pk])).content.decode()
    assert ">93<" in html and ">655 / 700<" in html
    assert "XID error" in html and "XID 79" in html
    assert reverse("node-charts", args=[dgx.pk]) in html  # charts: lazy panel, or a plain link without JS


def test_node_charts_per_gpu_series(viewer_client, small_fleet):
    g5 = small_fleet["g5"]
    gpu = g5.gpus.get()
    now = timezone.now()
    samples_ingest(
        samples=[Sample(gpu.pk, now - timedelta(minutes=m), 40 + m, 1000, 200, 60, 1500) for m in range(1, 5)]
    )
    response = viewer_client.get(reverse("node-charts", args=[g5.pk]), {"range": "1h"}, HTTP_HX_REQUEST="true")
    charts = {c["id"]: c for c in response.context["charts"]}
    assert set(charts) == {"chart-util_pct", "chart-mem_used_mib", "chart-power_w", "chart-temp_c"}
    util = charts["chart-util_pct"]["data"]
    assert util["datasets"][0]["label"] == "GPU 0" and sorted(util["datasets"][0]["data"]) == [41, 42, 43, 44]
    assert "<html" not in response.content.decode()
    page = viewer_client.get(reverse("node-charts", args=[g5.pk]), {"range": "bogus"})
    assert page.status_code == 200 and page.context["range"] == "6h" and "<html" in page.content.decode()


def test_node_detail_missing_is_404(viewer_client):
    assert viewer_client.get(reverse("node-detail", args=[999999])).status_code == 404


def test_pages_work_without_javascript_links(viewer_client, small_fleet):
    """Every HTMX link also carries a plain href, so reading works with JavaScript off."""
    html = viewer_client.get(reverse("node-list")).content.decode()
    import re

    for tag in re.findall(r"<a [^>]*hx-get[^>]*>", html):
        assert 'href="' in tag, tag


def test_overview_figures_are_cached_briefly_and_shared(viewer_client, small_fleet, settings, make_user, client):
    settings.DASHBOARD_CACHE_S = 60
    assert viewer_client.get(reverse("overview")).context["overview"].gpus_total == 10
    GPUFactory(node=small_fleet["g5"], index=1)
    other = client.__class__()
    other.force_login(make_user("viewer"))
    assert other.get(reverse("overview")).context["overview"].gpus_total == 10  # served from the cache
    settings.DASHBOARD_CACHE_S = 0
    assert other.get(reverse("overview")).context["overview"].gpus_total == 11


def test_overview_shows_each_telemetry_source_failing_and_silent_ones_first(viewer_client, settings):
    """An operator sees when telemetry falls behind: a failing shard, a silent PromQL source, remote-write's rate."""
    from fleet.choices import TelemetrySourceKind as Kind
    from fleet.telemetry.health import SourceRun, source_health_record

    now = timezone.now()
    source_health_record(SourceRun(Kind.SCRAPE_SHARD, "1/2", ok=True, samples=640), now=now)
    source_health_record(SourceRun(Kind.SCRAPE_SHARD, "2/2", ok=False, error="<script>x</script> timed out"), now=now)
    source_health_record(SourceRun(Kind.PROMQL, "thanos", ok=True, samples=10), now=now - timedelta(minutes=10))
    source_health_record(SourceRun(Kind.REMOTE_WRITE, "prom", ok=True, samples=6000), now=now - timedelta(seconds=60))
    source_health_record(SourceRun(Kind.REMOTE_WRITE, "prom", ok=True, samples=100), now=now)
    response = viewer_client.get(reverse("overview"))
    states = [(s.row.name, s.state) for s in response.context["telemetry_sources"]]
    assert states == [("2/2", "failing"), ("thanos", "silent"), ("prom", "ok"), ("1/2", "ok")]
    html = response.content.decode()
    assert 'data-testid="telemetry-sources"' in html and "&lt;script&gt;x&lt;/script&gt; timed out" in html
    remote = next(s for s in response.context["telemetry_sources"] if s.row.name == "prom")
    assert remote.rate_per_s == pytest.approx(100.0)  # 6,000 samples over the 60-s window
