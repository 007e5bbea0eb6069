"""The overview's money figures as people read them ("$1,234.57"), the unhealthy GPUs link and the node list's
new columns, in real Chromium."""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from billing.ledger import HOUR, hour_floor
from billing.models import Budget
from fleet.choices import HealthEventKind
from fleet.models import GPU, HealthEvent
from tests.billing.test_selectors import ledger_entry
from tests.factories import GPUFactory, NodeFactory, OnPremSiteFactory, TeamFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fleet(make_user):
    """An AWS node with GPUs at 40 % / 300 W and 60 % / 450 W, an open XID event and $1,234.565 in the last
    complete ledger hour; an on-prem node at 90 %, $3.00 + $0.75 energy. Team Alpha's budget: $875,100."""
    now = timezone.now()
    last = hour_floor(now) - HOUR
    alpha = TeamFactory(name="Alpha")
    aws = NodeFactory(name="use1-p5-<b>001</b>", team=alpha)
    g0, g1 = GPUFactory(node=aws, index=0), GPUFactory(node=aws, index=1)
    GPU.objects.filter(pk=g0.pk).update(sampled_at=now, util_pct=40, power_w=300)
    GPU.objects.filter(pk=g1.pk).update(sampled_at=now, util_pct=60, power_w=450)
    HealthEvent.objects.create(gpu=g0, node=aws, occurred_at=now, kind=HealthEventKind.XID, code=79)
    ledger_entry(node=aws, hour=last, compute="1234.565")
    dc = NodeFactory(name="ams1-dgx-001", site=OnPremSiteFactory(), lifecycle="owned", external_id="")
    d0 = GPUFactory(node=dc, index=0)
    GPU.objects.filter(pk=d0.pk).update(sampled_at=now, util_pct=90, power_w=650)
    ledger_entry(node=dc, hour=last, compute="3", energy="0.75")
    Budget.objects.create(team=alpha, monthly_usd=875100)
    make_user("admin", username="ada", password="correct horse battery")


def log_in(page, live_server):
    page.goto(f"{live_server.url}/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", "correct horse battery")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Overview")


def test_overview_money_and_the_node_list_columns(page, live_server, fleet, artifacts):
    log_in(page, live_server)
    expect(page.get_by_test_id("cost-per-hour")).to_have_text("$1,238.32/h")  # 1,234.565 + 3.75, half up
    expect(page.locator(".stat", has=page.get_by_test_id("spend-month"))).to_contain_text("of $875,100.00 budget")
    expect(page.locator(".stat", has=page.get_by_test_id("gpus-idle"))).to_contain_text("idle now")
    expect(page.locator("canvas[data-source=spend-chart-data]")).to_be_visible()
    page.locator("details.chart-table", has=page.get_by_test_id("spend-chart-table")).locator("summary").click()
    last_row = page.get_by_test_id("spend-chart-table").locator("tbody tr").last
    last_hour = f"{hour_floor(timezone.now()) - HOUR:%H}:00"
    expect(last_row.locator("td")).to_have_text([last_hour, "1,234.57", "3.75", "1,238.32"])
    expect(page.get_by_test_id("gpus-unhealthy")).to_have_text("1")
    page.screenshot(path=str(artifacts / "overview-columns.png"), full_page=True)

    page.get_by_test_id("gpus-unhealthy").locator("a").click()
    expect(page).to_have_url(f"{live_server.url}/nodes/?health=unhealthy")
    expect(page.get_by_test_id("node-count")).to_have_text("1 node")
    row = page.locator("#node-table tbody tr").first
    expect(row.locator("td").first).to_have_text("use1-p5-<b>001</b>")  # shown as text, not markup
    expect(row.locator("td[data-col=util]")).to_have_text("50.0 %")
    expect(row.locator("td[data-col=power]")).to_have_text("750")
    expect(row.locator("td[data-col=cost]")).to_have_text("$1,234.57")
    expect(row.locator("td[data-col=health]")).to_have_text("XID error")

    # Choosing "OK" re-renders the table (HTMX): the on-prem node, its $ with energy.
    page.select_option("select[name=health]", "ok")
    expect(page).to_have_url(f"{live_server.url}/nodes/?health=ok")
    row = page.locator("#node-table tbody tr").first
    expect(row.locator("td").first).to_have_text("ams1-dgx-001")
    expect(row.locator("td[data-col=cost]")).to_have_text("$3.75")
    expect(row.locator("td[data-col=health]")).to_have_text("ok")
    page.screenshot(path=str(artifacts / "nodes-columns.png"), full_page=True)
