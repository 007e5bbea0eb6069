"""The spend page and the overview's spend figures: numbers, filters, bad input, HTMX, team scope, queries."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from billing import selectors
from billing.models import BilledCost, Budget, LedgerDay
from fleet.choices import NodeLifecycle
from tests.billing.test_selectors import egress, ledger_day, ledger_entry
from tests.factories import NodeFactory, SiteFactory, TeamFactory

D = Decimal


@pytest.fixture
def fleet_spend(db):
    """Today: team Alpha spends 120 (of it 20 idle), team Beta 80; Alpha has a 1,000 budget."""
    today = selectors.utc_today()
    alpha, beta = TeamFactory(name="Alpha"), TeamFactory(name="Beta")
    site = SiteFactory(name="use1")
    ledger_day(day=today, site=site, team=alpha, compute="100", energy="20", idle="20")
    ledger_day(day=today, site=site, team=beta, compute="80")
    Budget.objects.create(team=alpha, monthly_usd=D("1000"))
    egress(day=today, usd="5", team=alpha, destination="onprem:alpha-dc")
    egress(day=today, usd="7", team=beta, destination="gcp:beta-region")
    node = NodeFactory(team=beta, site=site, name="beta-idle-node")
    ledger_entry(node=node, hour=selectors.day_bounds(today, today)[0], compute="10", idle="9", idle_gpu_hours="8")
    return {"alpha": alpha, "beta": beta, "site": site, "today": today}


def login(client, make_user, role="viewer", teams=()):
    user = make_user(role)
    for team in teams:
        team.members.add(user)
    client.force_login(user)
    return user


def test_spend_page_shows_totals_tables_and_budgets(client, make_user, fleet_spend):
    login(client, make_user, "operator")
    response = client.get(reverse("spend"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="spend-today">$200.00' in html
    assert 'data-testid="spend-month">$200.00' in html
    assert 'data-testid="spend-egress">$12.00' in html
    assert "Alpha" in html and "Beta" in html and "use1" in html and "H100" in html
    assert "onprem:alpha-dc" in html
    assert f'hx-get="{reverse("spend-idle-nodes")}?' in html  # the idle panel loads after the page
    assert 'data-testid="spend-budgets"' in html and "Alpha" in html
    assert 'id="spend-trend-data"' in html and 'class="chart-table"' in html  # chart + no-JS table
    assert f'href="{reverse("spend")}"' in html  # the nav link


def test_spend_page_writes_money_with_separators_percent_to_the_tenth_and_sizes_in_gb(client, make_user, db):
    """$15,131.77 spent today of a $875,100 budget: 15,131.77 / 875,100 = 1.729 % → "1.7 %"; 24 GPU-hours; the
    egress record of 10**9 bytes reads "1 GB" (decimal, as egress is billed), not "953.7 MB"."""
    today = selectors.utc_today()
    team = TeamFactory(name="Big")
    ledger_day(day=today, site=SiteFactory(name="use1"), team=team, compute="15131.77", gpu_hours=D("1234.56"))
    Budget.objects.create(team=team, monthly_usd=D("875100"))
    egress(day=today, usd="0.09", team=team)
    login(client, make_user, "operator")
    html = client.get(reverse("spend")).content.decode()
    assert 'data-testid="spend-today">$15,131.77' in html
    assert "month to date of $875,100.00 (1.7 %)" in html and "vs $875,100.00 budgeted" in html
    assert '<td class="num">875,100.00</td><td class="num">15,131.77</td>' in html  # the budgets table
    assert '<td class="num">1.7</td>' in html  # its "%" column
    assert '<td class="num">1,234.6</td>' in html  # GPU-h: 0.1 half up, with separators
    assert '<td class="num">1 GB</td>' in html and "953.7" not in html
    # Only the chart's JSON keeps plain numbers; its no-JS table writes money as the page does.
    people_read = re.sub(r'<script id="spend-trend-data".*?</script>', "", html, flags=re.S)
    assert "15131.77" not in people_read and '<td class="num">15,131.77</td>' in people_read


def test_idle_nodes_panel_and_its_no_js_page(client, make_user, fleet_spend):
    login(client, make_user, "operator")
    panel = client.get(reverse("spend-idle-nodes"), HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in panel and "beta-idle-node" in panel and "9.00" in panel
    page = client.get(reverse("spend-idle-nodes"))
    assert page.status_code == 200 and "<html" in page.content.decode() and "beta-idle-node" in page.content.decode()
    bad = client.get(reverse("spend-idle-nodes"), {"date_to": "nope"})
    assert bad.status_code == 400 and 'data-testid="form-errors"' in bad.content.decode()
    client.logout()
    login(client, make_user, "viewer", teams=[fleet_spend["alpha"]])
    assert "beta-idle-node" not in client.get(reverse("spend-idle-nodes")).content.decode()
    other_team = client.get(reverse("spend-idle-nodes"), {"team": fleet_spend["beta"].pk})
    assert other_team.status_code == 400 and "beta-idle-node" not in other_team.content.decode()


def test_spend_page_cache_is_per_scope(client, make_user, fleet_spend, settings):
    settings.DASHBOARD_CACHE_S = 60
    login(client, make_user, "operator")
    assert 'data-testid="spend-today">$200.00' in client.get(reverse("spend")).content.decode()
    client.logout()
    login(client, make_user, "viewer", teams=[fleet_spend["beta"]])
    assert 'data-testid="spend-today">$80.00' in client.get(reverse("spend")).content.decode()


def test_spend_page_query_count_does_not_grow(client, make_user, fleet_spend, django_assert_max_num_queries, settings):
    settings.DASHBOARD_CACHE_S = 0  # measure the queries, not the cache
    login(client, make_user, "admin")
    with django_assert_max_num_queries(30):
        assert client.get(reverse("spend")).status_code == 200
    for i in range(10):
        team = TeamFactory()
        ledger_day(day=fleet_spend["today"], team=team, compute=str(i + 1))
        Budget.objects.create(team=team, monthly_usd=D("10"))
        ledger_entry(
            node=NodeFactory(team=team),
            hour=selectors.day_bounds(fleet_spend["today"], fleet_spend["today"])[0],
            idle="1",
        )
    with django_assert_max_num_queries(30):
        assert client.get(reverse("spend")).status_code == 200


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"date_from": "not-a-date"}, "From"),
        ({"date_to": "2026-13-45"}, "To"),
        ({"date_from": "2026-03-10", "date_to": "2026-03-01"}, "before the start"),
        ({"date_from": "2020-01-01", "date_to": "2026-01-01"}, "at most 400 days"),
        ({"team": "not-a-number"}, "Team"),
        ({"team": "987654"}, "Team"),
    ],
)
def test_spend_page_bad_filters_are_form_errors(client, make_user, fleet_spend, params, field):
    login(client, make_user)
    response = client.get(reverse("spend"), params)
    assert response.status_code == 400
    html = response.content.decode()
    assert 'data-testid="form-errors"' in html and field in html
    assert 'data-testid="spend-today"' not in html


@pytest.mark.parametrize("url", ["spend", "spend-idle-nodes"])
@pytest.mark.parametrize(
    "params",
    [
        {"date_from": "9999-12-01", "date_to": "9999-12-31"},
        {"date_from": "9999-12-31"},
        {"date_from": "1900-01-01", "date_to": "1900-01-02"},
    ],
)
def test_spend_dates_out_of_bounds_are_form_errors_not_500(client, make_user, fleet_spend, url, params):
    # The API's bounds: 9999-12-31 + 1 day overflowed into a 500 before.
    login(client, make_user)
    response = client.get(reverse(url), params)
    assert response.status_code == 400
    html = response.content.decode()
    assert 'data-testid="form-errors"' in html and "Give a day between 1970-01-01 and 2999-12-31" in html


def test_spend_page_date_range_and_team_filter(client, make_user, fleet_spend):
    login(client, make_user, "operator")
    today = fleet_spend["today"]
    ledger_day(day=today - timedelta(days=40), team=fleet_spend["alpha"], compute="1000")
    params = {"date_from": (today - timedelta(days=40)).isoformat(), "date_to": today.isoformat()}
    html = client.get(reverse("spend"), params).content.decode()
    assert 'data-testid="spend-range">$1,200.00' in html  # core.figures: thousands separators
    html = client.get(reverse("spend"), {**params, "team": fleet_spend["beta"].pk}).content.decode()
    assert 'data-testid="spend-range">$80.00' in html


def test_htmx_request_gets_the_results_partial(client, make_user, fleet_spend):
    login(client, make_user, "operator")
    response = client.get(reverse("spend"), {"team": fleet_spend["alpha"].pk}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith("{% load") is False and 'id="spend-results"' in html
    assert "<html" not in html and 'data-testid="spend-range">$120.00' in html
    bad = client.get(reverse("spend"), {"date_from": "x"}, HTTP_HX_REQUEST="true")
    assert bad.status_code == 200 and 'data-testid="form-errors"' in bad.content.decode()


def test_scoped_viewer_sees_only_their_team(client, make_user, fleet_spend):
    login(client, make_user, "viewer", teams=[fleet_spend["alpha"]])
    html = client.get(reverse("spend")).content.decode()
    assert 'data-testid="spend-today">$120.00' in html
    assert "Beta" not in html and "beta-idle-node" not in html and "gcp:beta-region" not in html
    assert 'data-testid="scope-note"' in html
    # Asking for another team's spend is refused, not answered.
    response = client.get(reverse("spend"), {"team": fleet_spend["beta"].pk})
    assert response.status_code == 400 and "$80.00" not in response.content.decode()


def test_reconciliation_shown_to_unscoped_viewers_only(client, make_user, fleet_spend):
    provider = fleet_spend["site"].provider
    BilledCost.objects.create(provider=provider, day=fleet_spend["today"], usd=D("210"))
    login(client, make_user, "operator")
    html = client.get(reverse("spend")).content.decode()
    assert 'data-testid="spend-reconciliation"' in html and "210.00" in html and "10.00" in html
    client.logout()
    login(client, make_user, "viewer", teams=[fleet_spend["alpha"]])
    assert 'data-testid="spend-reconciliation"' not in client.get(reverse("spend")).content.decode()


def test_spend_page_needs_login(client, db):
    response = client.get(reverse("spend"))
    assert response.status_code == 302 and "login" in response["Location"]


def test_overview_spend_figures_per_scope(client, make_user, fleet_spend, django_assert_max_num_queries):
    login(client, make_user, "operator")
    html = client.get(reverse("overview")).content.decode()
    assert 'data-testid="spend-today">$200.00' in html
    assert 'data-testid="spend-month">$200.00' in html and "of $1,000.00 budget" in html
    assert 'data-testid="spend-egress">$12.00' in html
    assert 'data-testid="spend-idle-today">$20.00' in html
    assert f'href="{reverse("spend")}"' in html
    client.logout()
    # The overview's fleet figures are cached for everyone; spend must not leak across scopes.
    login(client, make_user, "viewer", teams=[fleet_spend["beta"]])
    html = client.get(reverse("overview")).content.decode()
    assert 'data-testid="spend-today">$80.00' in html and "(no budgets)" in html
    assert 'data-testid="spend-egress">$7.00' in html
    with django_assert_max_num_queries(25):
        client.get(reverse("overview"), HTTP_HX_REQUEST="true")


def test_overview_shows_kgco2e_broken_capacity_and_unused_commitments(client, make_user, db):
    """Today: team Alpha's node-day of $100 compute, $25 of it on broken GPUs (2 GPU-hours), 12,345.6 kgCO2e;
    an unused reserved instance of $240 (no site, no team). Spend today = 100 + 240 = $340.00; broken $25.00;
    unused commitments $240.00 today and this month; 12,345.6 kg is shown in tonnes: 12.35 tCO2e."""
    today = selectors.utc_today()
    alpha = TeamFactory(name="Alpha")
    site = SiteFactory(name="use1")
    ledger_day(
        day=today, site=site, team=alpha, compute="100", co2e_kg=D("12345.6"), broken_usd=D(25),
        broken_gpu_hours=D(2),
    )  # fmt: skip
    LedgerDay.objects.create(
        day=today, provider=site.provider, provider_kind=site.provider.kind, site=None, team=None, gpu_model="",
        lifecycle=NodeLifecycle.RESERVED, nodes=0, compute_usd=0, energy_kwh=0, energy_usd=0, gpu_hours=0,
        idle_gpu_hours=0, idle_usd=0, unused_commitment_usd=D(240), total_usd=D(240),
    )  # fmt: skip
    login(client, make_user, "admin")
    html = client.get(reverse("overview")).content.decode()
    assert 'data-testid="spend-today">$340.00' in html
    assert 'data-testid="spend-broken-today">$25.00' in html and "($25.00 this month)" in html
    assert 'data-testid="spend-unused-commitments-month">$240.00' in html and "($240.00 today)" in html
    assert 'data-testid="co2e-today">12.35 tCO2e' in html and 'data-testid="co2e-month">12.35 tCO2e' in html
    # A viewer of team Alpha sees neither the unassigned commitment nor other teams' figures.
    client.logout()
    login(client, make_user, "viewer", teams=[alpha])
    html = client.get(reverse("overview")).content.decode()
    assert 'data-testid="spend-today">$100.00' in html
    assert 'data-testid="spend-unused-commitments-month">$0.00' in html


def test_overview_spend_matches_spend_page(client, make_user, fleet_spend):
    login(client, make_user, "admin")
    overview = client.get(reverse("overview")).content.decode()
    spend = client.get(reverse("spend")).content.decode()
    for testid in ("spend-today", "spend-month"):
        marker = f'data-testid="{testid}">'
        assert overview.split(marker)[1].split("<")[0] == spend.split(marker)[1].split("<")[0] == "$200.00"


@pytest.mark.slow
def test_spend_benchmark_prints_figures_beside_its_baseline(db):

    from tests.bench_run import bench_figures

    figures = bench_figures("spend", "0.002")
    assert figures["totals_agree"] is True
    for key in ("spend_page", "summary_api", "baseline_summary_from_ledger_entries", "idle_cost_nodes_selector"):
        assert figures[key]["p95_ms"] > 0, key
    assert figures["ledger_entries"] == figures["nodes"] * 30 * 24
