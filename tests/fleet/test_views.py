"""The overview and node pages: counts from the database, filters, HTMX partials, no N+1."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

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
    response = viewer_client.get(reverse("overview"))
    assert response.status_code == 200
    overview = response.context["overview"]
    assert (overview.gpus_total, overview.gpus_online, overview.nodes_total) == (10, 9, 3)
    assert overview.gpus_by_provider == {"AWS": 2, "Google Cloud": 0, "On-prem": 8}
    assert overview.nodes_by_state["Unreachable"] == 1
    assert overview.gpus_by_model == [("NVIDIA H100 80GB HBM3", 8), ("NVIDIA A10G", 2)]
    html = response.content.decode()
    assert 'data-testid="gpus-total">10<' in html


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
    ],
)
def test_node_list_filters(viewer_client, small_fleet, query, expected):
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


def test_node_detail_missing_is_404(viewer_client):
    assert viewer_client.get(reverse("node-detail", args=[999999])).status_code == 404


def test_pages_work_without_javascript_links(viewer_client, small_fleet):
    """Every HTMX link also carries a plain href, so reading works with JavaScript off."""
    html = viewer_client.get(reverse("node-list")).content.decode()
    import re

    for tag in re.findall(r"<a [^>]*hx-get[^>]*>", html):
        assert 'href="' in tag, tag
