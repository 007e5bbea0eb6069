"""The overview's new figures: spend by provider per hour (stacked, with its table), the cost per hour now, the
unhealthy GPUs, labels that say what the idle figures are, money with thousands separators, in the viewer's scope
and without per-provider or per-node queries.

Ledger rows are written directly (tests.billing.test_selectors.ledger_entry); hours are UTC hours before now.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing.ledger import HOUR, hour_floor
from billing.models import Budget, LedgerShare
from billing.selectors import spend_by_provider_hourly
from fleet.choices import HealthEventKind
from fleet.models import GPU, HealthEvent
from tests.billing.test_selectors import ledger_entry
from tests.factories import GPUFactory, NodeFactory, OnPremSiteFactory, ProviderFactory, SiteFactory, TeamFactory

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def hourly():
    """Alpha's AWS node: $10.00 two hours ago, $1,234.565 in the last complete hour; Beta's on-prem node: $3.00 +
    $0.50 energy, then $3.00 + $0.75. The current (partial) hour and one 25 hours back are outside the chart."""
    current = hour_floor(timezone.now())
    alpha, beta = TeamFactory(name="Alpha"), TeamFactory(name="Beta")
    aws = NodeFactory(name="use1-p5-001", site=SiteFactory(name="use1"), team=alpha)
    dc = NodeFactory(name="ams1-dgx-001", site=OnPremSiteFactory(name="dc-ams1"), lifecycle="owned", team=beta)
    ledger_entry(node=aws, hour=current - 2 * HOUR, compute="10")
    ledger_entry(node=aws, hour=current - HOUR, compute="1234.565")
    ledger_entry(node=dc, hour=current - 2 * HOUR, compute="3", energy="0.5")
    ledger_entry(node=dc, hour=current - HOUR, compute="3", energy="0.75")
    ledger_entry(node=aws, hour=current, compute="99")
    ledger_entry(node=aws, hour=current - 25 * HOUR, compute="77")
    return {"current": current, "alpha": alpha, "beta": beta, "aws": aws, "dc": dc}


def login(client, make_user, role="admin", teams=()):
    user = make_user(role)
    for team in teams:
        team.members.add(user)
    client.force_login(user)
    return user


def test_spend_by_provider_hourly_sums_each_kind_per_hour_in_scope(hourly):
    current = hourly["current"]
    start, end = current - 24 * HOUR, current
    assert spend_by_provider_hourly(start=start, end=end) == {
        "aws": {current - 2 * HOUR: D("10"), current - HOUR: D("1234.565")},
        "onprem": {current - 2 * HOUR: D("3.5"), current - HOUR: D("3.75")},
    }
    assert spend_by_provider_hourly(start=start, end=end, teams=[hourly["beta"].pk]) == {
        "onprem": {current - 2 * HOUR: D("3.5"), current - HOUR: D("3.75")},
    }
    assert spend_by_provider_hourly(start=start, end=end, teams=[]) == {}


def test_a_sliced_nodes_hour_counts_by_its_shares(hourly):
    """A GCP node of Alpha, $40 in the last hour, sliced: Alpha holds 1/4 ($10), Beta 3/4 ($30). Beta's scope
    sees $30 of it; the whole fleet sees the $40 once (the shares replace the entry, they do not add to it)."""
    current, alpha, beta = hourly["current"], hourly["alpha"], hourly["beta"]
    gcp = NodeFactory(site=SiteFactory(provider=ProviderFactory(kind="gcp")), team=alpha)
    entry = ledger_entry(node=gcp, hour=current - HOUR, compute="40")
    figures = {
        "gpu_hours": 0, "energy_kwh": 0, "energy_usd": 0, "idle_gpu_hours": 0, "idle_usd": 0, "broken_gpu_hours": 0,
        "broken_usd": 0, "covered_usd": 0,
    }  # fmt: skip
    LedgerShare.objects.create(entry=entry, team=alpha, fraction=D("0.25"), compute_usd=D("10"), **figures)
    LedgerShare.objects.create(entry=entry, team=beta, fraction=D("0.75"), compute_usd=D("30"), **figures)
    start, end = current - 24 * HOUR, current
    assert spend_by_provider_hourly(start=start, end=end)["gcp"] == {current - HOUR: D("40")}
    assert spend_by_provider_hourly(start=start, end=end, teams=[beta.pk])["gcp"] == {current - HOUR: D("30")}
    assert spend_by_provider_hourly(start=start, end=end, teams=[alpha.pk])["gcp"] == {current - HOUR: D("10")}


def test_overview_stacks_spend_by_provider_and_shows_the_cost_per_hour(client, make_user, hourly):
    Budget.objects.create(team=hourly["alpha"], monthly_usd=D("875100"))
    login(client, make_user, "admin")
    response = client.get(reverse("overview"))
    context, html = response.context, response.content.decode()
    chart = context["spend_chart"]
    assert len(chart["labels"]) == 24 and chart["labels"][-1] == f"{(hourly['current'] - HOUR):%H}:00"
    assert chart["datasets"] == [
        {"label": "AWS", "data": [0.0] * 22 + [10.0, 1234.57]},  # 1234.565 rounds half up
        {"label": "On-prem", "data": [0.0] * 22 + [3.5, 3.75]},
    ]
    # The last complete hour: 1,234.565 + 3.75 = 1,238.315 → $1,238.32.
    assert context["cost_per_hour_usd"] == D("1238.315")
    assert 'data-testid="cost-per-hour">$1,238.32/h<' in html
    assert 'data-chart="bar" data-stacked="true" data-source="spend-chart-data"' in html
    assert 'id="spend-chart-data"' in html
    # The no-JS table: every money cell through `usd`, a total per hour.
    table = html.split('data-testid="spend-chart-table"')[1].split("</table>")[0]
    assert '<th class="num">AWS</th><th class="num">On-prem</th><th class="num">Total</th>' in table
    assert '<td class="num">1,234.57</td><td class="num">3.75</td><td class="num">1,238.32</td>' in table
    assert '<td class="num">10.00</td><td class="num">3.50</td><td class="num">13.50</td>' in table
    assert "of $875,100.00 budget" in html


def test_the_spend_chart_and_cost_per_hour_are_in_the_viewers_scope(client, make_user, hourly):
    login(client, make_user, "viewer", teams=[hourly["beta"]])
    response = client.get(reverse("overview"))
    assert [ds["label"] for ds in response.context["spend_chart"]["datasets"]] == ["On-prem"]
    assert 'data-testid="cost-per-hour">$3.75/h<' in response.content.decode()


def test_no_ledger_hour_yet_is_a_dash_not_zero(client, make_user, db):
    login(client, make_user, "admin")
    response = client.get(reverse("overview"))
    html = response.content.decode()
    assert response.context["cost_per_hour_usd"] is None
    assert 'data-testid="cost-per-hour">—<' in html and "No ledger hours in this period yet." in html


def test_unhealthy_gpus_are_counted_and_link_to_the_filtered_node_list(client, make_user, db):
    """Node A: GPU 0 has an open XID and an open GPU-lost event (one GPU), GPU 1 a resolved double-bit ECC
    event; node B: GPU 0 an open ECC single-bit event (corrected: not broken). One unhealthy GPU."""
    now = timezone.now()
    a, b = NodeFactory(name="node-a"), NodeFactory(name="node-b")
    a0, a1, b0 = GPUFactory(node=a, index=0), GPUFactory(node=a, index=1), GPUFactory(node=b, index=0)
    HealthEvent.objects.create(gpu=a0, node=a, occurred_at=now, kind=HealthEventKind.XID, code=79)
    HealthEvent.objects.create(gpu=a0, node=a, occurred_at=now, kind=HealthEventKind.GPU_LOST)
    HealthEvent.objects.create(
        gpu=a1, node=a, occurred_at=now - timedelta(hours=2), kind=HealthEventKind.ECC_DBE, resolved_at=now
    )
    HealthEvent.objects.create(gpu=b0, node=b, occurred_at=now, kind=HealthEventKind.ECC_SBE, code=3)
    login(client, make_user, "viewer")
    response = client.get(reverse("overview"))
    assert response.context["overview"].gpus_broken == 1
    link = f"{reverse('node-list')}?health=unhealthy"
    assert f'data-testid="gpus-unhealthy"><a href="{link}">1</a>' in response.content.decode()
    listed = client.get(link).context["page"]
    assert [n.name for n in listed] == ["node-a"]


def test_idle_figures_say_what_they_are(client, make_user, db):
    now = timezone.now()
    node = NodeFactory()
    GPUFactory(node=node, index=0)
    GPU.objects.update(sampled_at=now, util_pct=0, idle_since=now - timedelta(hours=2))
    login(client, make_user, "viewer")
    html = client.get(reverse("overview")).content.decode()
    assert 'data-testid="gpus-idle">1</span><span class="label">idle now</span>' in html
    assert '<span class="label">cost of idle GPU-hours today ($0.00/day this month)</span>' in html
    assert '<span class="label">idle</span>' not in html


def _overview_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("overview"), HTTP_HX_REQUEST="true").status_code == 200
    return len(queries)


def test_the_new_figures_add_no_query_per_provider_or_node(client, make_user, hourly, settings):
    """The overview's queries stay the same from 2 nodes on 2 providers to 14 on 3, each node with GPUs, an open
    health event and ledger hours (uncached: every request reads)."""
    settings.DASHBOARD_CACHE_S = 0
    login(client, make_user, "viewer", teams=[hourly["alpha"], hourly["beta"]])
    client.get(reverse("overview"))  # the session, the user, their teams: read once before counting
    few = _overview_queries(client)
    current, now = hourly["current"], timezone.now()
    gcp = SiteFactory(provider=ProviderFactory(kind="gcp"))
    for i in range(12):
        node = NodeFactory(site=gcp if i % 2 else SiteFactory(), team=hourly["alpha"])
        gpu = GPUFactory(node=node, index=0)
        HealthEvent.objects.create(gpu=gpu, node=node, occurred_at=now, kind=HealthEventKind.XID, code=13)
        ledger_entry(node=node, hour=current - HOUR, compute="1")
    assert _overview_queries(client) == few
    assert client.get(reverse("overview")).context["overview"].gpus_broken == 12
