"""Log in, see the overview with the seeded counts, open the nodes list and filter it, in real Chromium."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from devtools.demo.fleet import demo_fleet_seed
from fleet.models import GPU, Node
from fleet.telemetry.storage import Sample, samples_ingest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def seeded(make_user):
    demo_fleet_seed(nodes=80, seed=11)
    make_user("viewer", username="ada", password="correct horse battery")


def log_in(page, live_server):
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(f"{live_server.url}/login/?next=/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", "correct horse battery")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Overview")


def test_login_overview_and_filter_nodes(page, live_server, seeded, artifacts):
    log_in(page, live_server)
    expect(page.get_by_test_id("gpus-total")).to_have_text(str(GPU.objects.count()))
    expect(page.get_by_test_id("nodes-total")).to_have_text(str(Node.objects.count()))
    page.screenshot(path=str(artifacts / "overview.png"), full_page=True)

    page.click("nav >> text=Nodes")
    expect(page.get_by_test_id("node-count")).to_have_text(f"{Node.objects.count()} nodes")

    # Choosing a provider re-renders only the table (HTMX) and puts the filter in the URL.
    onprem = Node.objects.filter(site__provider__kind="onprem").count()
    page.select_option("select[name=provider]", "onprem")
    expect(page.get_by_test_id("node-count")).to_have_text(f"{onprem} nodes")
    expect(page).to_have_url(f"{live_server.url}/nodes/?provider=onprem")

    # Typing in the search box narrows it further, without a reload.
    page.fill("input[name=q]", "dgx")
    # The search matches names and instance types (the demo's MIG node is a dgx-h100 without "dgx" in its name).
    dgx = set(
        Node.objects.filter(site__provider__kind="onprem", instance_type__icontains="dgx").values_list(
            "name", flat=True
        )
    )
    expect(page.get_by_test_id("node-count")).to_have_text(f"{len(dgx)} node{'s' if len(dgx) != 1 else ''}")
    shown = page.locator("#node-table tbody tr td:first-child a").all_inner_texts()
    assert shown and set(shown) <= dgx  # the first page of them
    page.screenshot(path=str(artifacts / "nodes-filtered.png"), full_page=True)


def test_nodes_filter_works_with_javascript_off(chromium, live_server, seeded, artifacts):
    context = chromium.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        log_in(page, live_server)
        page.goto(f"{live_server.url}/nodes/")
        page.select_option("select[name=state]", "unreachable")
        page.click("form.filters button[type=submit]")
        unreachable = Node.objects.filter(state="unreachable").count()
        expect(page.get_by_test_id("node-count")).to_contain_text(f"{unreachable} node")
        assert "state=unreachable" in page.url
        page.screenshot(path=str(artifacts / "nodes-no-js.png"), full_page=True)
    finally:
        context.close()


def test_overview_values_update_live_without_a_reload(page, live_server, seeded, settings):
    settings.DASHBOARD_REFRESH_S = 1
    settings.DASHBOARD_CACHE_S = 0
    now = timezone.now()
    GPU.objects.update(sampled_at=now, power_w=100.0, util_pct=10.0)
    log_in(page, live_server)
    online = GPU.objects.filter(node__state="running").count()  # only running nodes' GPUs count as online
    expect(page.get_by_test_id("power-now")).to_have_text(f"{round(online * 100 / 1000, 2)} kW")
    page.evaluate("window.__sameDocument = true")  # gone if the page were reloaded

    GPU.objects.update(sampled_at=timezone.now(), power_w=250.0, util_pct=75.0)
    expect(page.get_by_test_id("power-now")).to_have_text(f"{round(online * 250 / 1000, 2)} kW")
    expect(page.get_by_test_id("util-now")).to_have_text("75.0 %")
    assert page.evaluate("window.__sameDocument") is True


def test_node_detail_charts_load_in_the_browser(page, live_server, seeded, artifacts):
    node = Node.objects.filter(state="running").first()
    gpu = node.gpus.first()
    samples_ingest(
        samples=[
            Sample(gpu.pk, timezone.now() - timedelta(minutes=m), 50 + m, 1000, 300, 60, 1500) for m in range(1, 30)
        ]
    )
    log_in(page, live_server)
    page.goto(f"{live_server.url}/nodes/{node.pk}/")
    expect(page.get_by_test_id("node-charts")).to_be_visible()
    assert page.locator("#node-charts canvas").count() == 4
    page.screenshot(path=str(artifacts / "node-detail.png"), full_page=True)
