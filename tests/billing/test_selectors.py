"""Spend selectors: totals, groupings, egress, forecast, budget status and top idle nodes, with team scope.

The helpers ``ledger_day`` and ``ledger_entry`` insert ledger rows directly (the ledger itself is written
by billing.ledger); the other spend test modules import them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from billing import selectors
from billing.choices import EgressCause
from billing.ledger import ledger_node_days_refresh
from billing.models import Budget, EgressRecord, LedgerDay, LedgerEntry
from fleet.choices import NodeLifecycle, ProviderKind
from tests.factories import NodeFactory, ProjectFactory, SiteFactory, TeamFactory

D = Decimal


def ledger_day(*, day: date, site=None, team=None, project=None, compute="0", energy="0", idle="0", **extra):
    """One LedgerDay row; total = compute + energy."""
    site = site or SiteFactory()
    compute, energy = D(compute), D(energy)
    defaults = {
        "gpu_model": "NVIDIA H100 80GB HBM3",
        "lifecycle": NodeLifecycle.ON_DEMAND,
        "nodes": 1,
        "energy_kwh": D("0"),
        "gpu_hours": D("24"),
        "idle_gpu_hours": D("0"),
    }
    defaults.update(extra)
    return LedgerDay.objects.create(
        day=day,
        provider=site.provider,
        provider_kind=site.provider.kind,
        site=site,
        team=team,
        project=project,
        compute_usd=compute,
        energy_usd=energy,
        idle_usd=D(idle),
        total_usd=compute + energy,
        **defaults,
    )


def ledger_entry(*, node, hour: datetime, compute="0", energy="0", idle="0", idle_gpu_hours="0"):
    """One LedgerEntry row of ``node`` (its site, team and project copied on), with its node-day sums refreshed."""
    entry = LedgerEntry.objects.create(
        node=node,
        hour=hour,
        provider=node.site.provider,
        provider_kind=node.site.provider.kind,
        site=node.site,
        team=node.team,
        project=node.project,
        gpu_model="NVIDIA H100 80GB HBM3",
        lifecycle=node.lifecycle,
        gpu_count=8,
        active_s=3600,
        rate_usd_per_h=D(compute),
        compute_usd=D(compute),
        energy_kwh=D("0"),
        energy_usd=D(energy),
        gpu_hours=D("8"),
        idle_gpu_hours=D(idle_gpu_hours),
        idle_usd=D(idle),
    )
    ledger_node_days_refresh(days=[hour.astimezone(UTC).date()])
    return entry


def egress(*, day: date, usd: str, team=None, source="aws:us-east-1", destination="onprem:dc-1", planned=False):
    """One egress record at noon UTC of ``day``."""
    return EgressRecord.objects.create(
        occurred_at=datetime(day.year, day.month, day.day, 12, tzinfo=UTC),
        source=source,
        destination=destination,
        source_provider_kind=ProviderKind.AWS,
        bytes=10**9,
        usd=D(usd),
        cause=EgressCause.MANUAL,
        planned=planned,
        team=team,
    )


@pytest.fixture
def two_teams(db):
    """Team a spends 100 + 50 on two days at site 1; team b 30 at site 2; 7 without a team."""
    a, b = TeamFactory(name="Alpha"), TeamFactory(name="Beta")
    site1, site2 = SiteFactory(name="s1"), SiteFactory(name="s2")
    project = ProjectFactory(team=a)
    ledger_day(day=date(2026, 3, 1), site=site1, team=a, project=project, compute="100", idle="10")
    ledger_day(day=date(2026, 3, 2), site=site1, team=a, compute="40", energy="10", idle="5")
    ledger_day(day=date(2026, 3, 2), site=site2, team=b, compute="30", lifecycle=NodeLifecycle.SPOT)
    ledger_day(day=date(2026, 3, 3), site=site2, compute="7", gpu_model="NVIDIA A100-SXM4-80GB")
    ledger_day(day=date(2026, 4, 1), site=site1, team=a, compute="999")  # next month: outside
    return a, b, site1, site2, project


MARCH = {"start": date(2026, 3, 1), "end": date(2026, 4, 1)}


def test_spend_totals_sum_the_period_end_exclusive(two_teams):
    totals = selectors.spend_totals(**MARCH)
    assert totals.total_usd == D("187")
    assert totals.compute_usd == D("177")
    assert totals.energy_usd == D("10")
    assert totals.idle_usd == D("15")
    assert selectors.spend_totals(start=date(2026, 3, 2), end=date(2026, 3, 3)).total_usd == D("80")


def test_spend_totals_team_scope(two_teams):
    a, b, *_ = two_teams
    assert selectors.spend_totals(**MARCH, teams=[a.pk]).total_usd == D("150")
    assert selectors.spend_totals(**MARCH, teams=[b.pk]).total_usd == D("30")
    assert selectors.spend_totals(**MARCH, teams=[]).total_usd == D("0")


def test_spend_by_team_sorted_by_total_with_unassigned(two_teams):
    a, b, *_ = two_teams
    rows = selectors.spend_by(dimension="team", **MARCH)
    assert [(r["key"], r["label"], r["total_usd"]) for r in rows] == [
        (a.pk, "Alpha", D("150")),
        (b.pk, "Beta", D("30")),
        (None, "Unassigned", D("7")),
    ]


def test_every_dimension_adds_up_to_the_total(two_teams):
    total = selectors.spend_totals(**MARCH).total_usd
    for dimension in selectors.SPEND_DIMENSIONS:
        rows = selectors.spend_by(dimension=dimension, **MARCH)
        assert sum(r["total_usd"] for r in rows) == total, dimension


def test_spend_by_gpu_model_uses_catalogue_keys(two_teams):
    rows = selectors.spend_by(dimension="gpu_model", **MARCH)
    assert [(r["label"], r["total_usd"]) for r in rows] == [("H100", D("180")), ("A100-80GB", D("7"))]


def test_spend_by_day_fills_every_day(two_teams):
    rows = selectors.spend_by(dimension="day", start=date(2026, 2, 28), end=date(2026, 3, 5))
    assert [r["label"] for r in rows] == ["2026-02-28", "2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"]
    assert [r["total_usd"] for r in rows] == [D(0), D(100), D(80), D(7), D(0)]


def test_spend_by_labels_provider_site_project_lifecycle(two_teams):
    a, b, site1, site2, project = two_teams
    sites = selectors.spend_by(dimension="site", **MARCH)
    assert [(r["label"], r["total_usd"]) for r in sites] == [("s1", D(150)), ("s2", D(37))]
    projects = selectors.spend_by(dimension="project", **MARCH)
    assert projects[0]["label"] == str(project) and projects[0]["total_usd"] == D(100)
    lifecycles = {r["key"]: r["label"] for r in selectors.spend_by(dimension="lifecycle", **MARCH)}
    assert lifecycles["spot"] == "Spot"
    providers = selectors.spend_by(dimension="provider", **MARCH)
    assert {r["label"] for r in providers} == {site1.provider.name, site2.provider.name}


def test_spend_breakdown_equals_spend_by_and_totals(two_teams, django_assert_max_num_queries):
    a, *_ = two_teams
    for teams in (None, [a.pk], []):
        with django_assert_max_num_queries(5):  # one scan, then labels of provider, site, team, project
            totals, rows = selectors.spend_breakdown(dimensions=selectors.SPEND_DIMENSIONS, **MARCH, teams=teams)
        assert totals == selectors.spend_totals(**MARCH, teams=teams)
        for dimension in selectors.SPEND_DIMENSIONS:
            assert rows[dimension] == selectors.spend_by(dimension=dimension, **MARCH, teams=teams), dimension
    with pytest.raises(ValueError, match="dimension"):
        selectors.spend_breakdown(dimensions=("colour",), **MARCH)


def test_spend_by_rejects_unknown_dimension(db):
    with pytest.raises(ValueError, match="dimension"):
        selectors.spend_by(dimension="colour", **MARCH)


def test_spend_by_query_count_is_constant(two_teams, django_assert_max_num_queries):
    for dimension in selectors.SPEND_DIMENSIONS:
        with django_assert_max_num_queries(2):
            selectors.spend_by(dimension=dimension, **MARCH)


def test_egress_by_route_and_total_skip_planned_and_scope(two_teams):
    a, b, *_ = two_teams
    egress(day=date(2026, 3, 4), usd="2.5", team=a)
    egress(day=date(2026, 3, 5), usd="1.5", team=a)
    egress(day=date(2026, 3, 5), usd="4", team=b, destination="gcp:europe-west4")
    egress(day=date(2026, 3, 5), usd="100", team=a, planned=True)
    egress(day=date(2026, 4, 1), usd="100", team=a)
    routes = selectors.egress_by_route(**MARCH)
    assert [(r["destination"], r["usd"], r["records"], r["bytes"]) for r in routes] == [
        ("gcp:europe-west4", D("4"), 1, 10**9),  # equal $: by source, then destination
        ("onprem:dc-1", D("4"), 2, 2 * 10**9),
    ]
    assert selectors.egress_total_usd(**MARCH) == D("8")
    assert selectors.egress_total_usd(**MARCH, teams=[b.pk]) == D("4")
    assert selectors.egress_by_route(**MARCH, teams=[]) == []


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (date(2026, 4, 10), D("300")),  # 100 over 10 of 30 days
        (date(2026, 4, 30), D("100")),  # the month is complete
        (date(2026, 5, 3), D("100")),  # after the month
        (date(2026, 3, 20), D("100")),  # before the month
        (datetime(2026, 4, 3, 0, tzinfo=UTC), D("1500")),  # 2 days elapsed (midnight of the 3rd)
        (datetime(2026, 4, 1, 0, 30, tzinfo=UTC), D("72000")),  # at least an hour counts as elapsed
    ],
)
def test_month_forecast_run_rate(today, expected):
    forecast = selectors.month_forecast_usd(month_start=date(2026, 4, 1), spent_usd=D("100"), today=today)
    assert forecast == expected


@pytest.mark.django_db
def test_budget_status_states_and_scope():
    a, b, c = TeamFactory(), TeamFactory(), TeamFactory()
    project = ProjectFactory(team=c)
    site = SiteFactory()
    ok = Budget.objects.create(team=a, monthly_usd=D("1000"))
    warn = Budget.objects.create(team=b, monthly_usd=D("1000"), alert_on_forecast=False)
    over = Budget.objects.create(project=project, monthly_usd=D("100"))
    ledger_day(day=date(2026, 4, 1), site=site, team=a, compute="10")
    ledger_day(day=date(2026, 4, 28), site=site, team=b, compute="850")
    ledger_day(day=date(2026, 4, 2), site=site, team=c, project=project, compute="120")
    ledger_day(day=date(2026, 4, 2), site=site, team=c, compute="1")  # team c, not its project
    statuses = {s.budget.pk: s for s in selectors.budget_status_list(month=date(2026, 4, 1), today=date(2026, 4, 28))}
    assert statuses[ok.pk].state == "ok" and statuses[ok.pk].spend_usd == D("10")
    assert statuses[warn.pk].state == "warning" and statuses[warn.pk].thresholds_crossed == [80]
    assert statuses[warn.pk].pct == D("85.0")
    assert statuses[over.pk].state == "over" and statuses[over.pk].thresholds_crossed == [80, 100]
    assert statuses[over.pk].spend_usd == D("120")
    early = selectors.budget_status_list(month=date(2026, 4, 1), today=date(2026, 4, 2), teams=[a.pk])
    assert [s.budget.pk for s in early] == [ok.pk]
    assert (early[0].state, early[0].forecast_usd) == ("ok", D("150"))  # 10 in 2 of 30 days
    assert selectors.budget_status_list(month=date(2026, 4, 1), teams=[]) == []


@pytest.mark.django_db
def test_budget_forecast_over_before_any_threshold():
    team = TeamFactory()
    budget = Budget.objects.create(team=team, monthly_usd=D("1000"))
    ledger_day(day=date(2026, 4, 2), team=team, compute="200")
    (status,) = selectors.budget_status_list(month=date(2026, 4, 1), today=date(2026, 4, 3))
    assert status.budget == budget
    assert (status.state, status.forecast_usd, status.thresholds_crossed) == ("forecast-over", D("2000"), [])
    assert status.forecast_pct == D("200.0")


@pytest.mark.django_db
def test_idle_cost_nodes_top_by_idle_usd_in_scope():
    a, b = TeamFactory(), TeamFactory()
    na, nb, nidle = NodeFactory(team=a, name="na"), NodeFactory(team=b, name="nb"), NodeFactory(team=a, name="nc")
    for hour in range(3):
        at = datetime(2026, 4, 2, hour, tzinfo=UTC)
        ledger_entry(node=na, hour=at, compute="10", idle="2", idle_gpu_hours="1")
        ledger_entry(node=nb, hour=at, compute="10", idle="5", idle_gpu_hours="2")
        ledger_entry(node=nidle, hour=at, compute="10")
    ledger_entry(node=na, hour=datetime(2026, 4, 3, 0, tzinfo=UTC), idle="100")  # outside the period
    rows = selectors.idle_cost_nodes(start=date(2026, 4, 2), end=date(2026, 4, 3))
    assert [(r["name"], r["idle_usd"], r["idle_gpu_hours"]) for r in rows] == [
        ("nb", D("15"), D("6")),
        ("na", D("6"), D("3")),
    ]
    assert rows[0]["team"] == b.name and rows[0]["site"] == nb.site.name
    scoped = selectors.idle_cost_nodes(start=date(2026, 4, 2), end=date(2026, 4, 3), teams=[a.pk])
    assert [r["name"] for r in scoped] == ["na"]


@pytest.mark.django_db
def test_spend_overview_figures_agree_with_totals():
    team = TeamFactory()
    Budget.objects.create(team=team, monthly_usd=D("3000"))
    ledger_day(day=date(2026, 4, 1), team=team, compute="100", idle="20")
    ledger_day(day=date(2026, 4, 2), team=team, compute="50", idle="10")
    egress(day=date(2026, 4, 2), usd="3", team=team)
    figures = selectors.spend_overview(today=date(2026, 4, 2))
    month = selectors.spend_totals(start=date(2026, 4, 1), end=date(2026, 4, 3))
    assert figures.month_to_date_usd == month.total_usd == D("150")
    assert figures.today_usd == D("50")
    assert figures.budget_usd == D("3000") and figures.budget_pct == D("5.0")
    assert figures.egress_month_usd == D("3")
    assert figures.idle_today_usd == D("10") and figures.idle_per_day_usd == D("15.00")
    assert figures.forecast_usd == D("2250")
    assert selectors.spend_overview(today=date(2026, 4, 2), teams=[]).month_to_date_usd == D("0")
    other = TeamFactory()
    assert selectors.spend_overview(today=date(2026, 4, 2), teams=[other.pk]).budget_usd == D("0")


@pytest.mark.django_db
def test_budget_total_counts_a_teams_projects_budgets_only_when_the_team_has_none():
    covered, open_team = TeamFactory(), TeamFactory()
    Budget.objects.create(team=covered, monthly_usd=D("1000"))
    Budget.objects.create(project=ProjectFactory(team=covered), monthly_usd=D("300"))  # inside the team's 1,000
    Budget.objects.create(project=ProjectFactory(team=open_team), monthly_usd=D("200"))
    Budget.objects.create(project=ProjectFactory(team=open_team), monthly_usd=D("50"))
    assert selectors.budget_total_usd() == D("1250")
    assert selectors.budget_total_usd(teams=[covered.pk]) == D("1000")
    assert selectors.budget_total_usd(teams=[open_team.pk]) == D("250")


@pytest.mark.django_db
def test_idle_cost_nodes_are_labelled_with_the_team_booked_not_the_current_one():
    booked, now_owner = TeamFactory(name="Booked"), TeamFactory(name="Now")
    node = NodeFactory(team=booked, name="moved")
    ledger_entry(node=node, hour=datetime(2026, 4, 2, 0, tzinfo=UTC), compute="10", idle="4", idle_gpu_hours="1")
    node.team = now_owner
    node.save(update_fields=["team"])
    (row,) = selectors.idle_cost_nodes(start=date(2026, 4, 2), end=date(2026, 4, 3))
    assert (row["name"], row["team"], row["idle_usd"]) == ("moved", "Booked", D("4"))
    assert selectors.idle_cost_nodes(start=date(2026, 4, 2), end=date(2026, 4, 3), teams=[now_owner.pk]) == []


@pytest.mark.django_db
def test_a_running_job_makes_its_planned_egress_real():
    from scheduler.jobs import job_transition
    from scheduler.models import Job, Placement

    team = TeamFactory()
    job = Job.objects.create(name="train", team=team, gpu_count=1, expected_hours=D("1"), state="placed")
    placement = Placement.objects.create(
        job=job,
        target_kind="node",
        gpu_count=1,
        provider_kind=ProviderKind.AWS,
        usd_per_h=D("1"),
        compute_usd=D("1"),
        egress_usd=D("9"),
        total_usd=D("10"),
        policy_version="test",
    )
    record = egress(day=date(2026, 4, 1), usd="9", team=team, planned=True)
    EgressRecord.objects.filter(pk=record.pk).update(placement=placement)
    assert selectors.egress_total_usd(start=date(2026, 4, 1), end=date(2026, 4, 3)) == D("0")
    started = datetime(2026, 4, 2, 9, 30, tzinfo=UTC)
    job_transition(job=job, state="running", now=started)
    record.refresh_from_db()
    assert (record.planned, record.occurred_at) == (False, started)
    assert selectors.egress_total_usd(start=date(2026, 4, 2), end=date(2026, 4, 3)) == D("9")
    assert selectors.egress_total_usd(start=date(2026, 4, 1), end=date(2026, 4, 2), teams=[team.pk]) == D("0")
