"""Log in, see the overview with the seeded counts, open the nodes list and filter it, in real Chromium."""

import pytest
from playwright.sync_api import expect

from fleet.demo import demo_fleet_seed
from fleet.models import GPU, Node

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
    dgx = Node.objects.filter(site__provider__kind="onprem", instance_type__icontains="dgx").count()
    expect(page.get_by_test_id("node-count")).to_have_text(f"{dgx} node{'s' if dgx != 1 else ''}")
    for name in page.locator("#node-table tbody tr td:first-child a").all_inner_texts():
        assert "dgx" in name
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
