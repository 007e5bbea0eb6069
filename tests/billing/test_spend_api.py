"""Spend API: summaries (JSON and CSV), egress by route, reconciliation, and the egress record, budget,
budget alert and ledger endpoints — bad input, team scope and query counts."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from billing import selectors
from billing.choices import BudgetAlertKind, EgressCause
from billing.models import BilledCost, Budget, BudgetAlert, EgressRecord
from core.choices import Role
from fleet.choices import ProviderKind
from tests.api_base import APIResourceTests
from tests.billing.test_selectors import egress, ledger_day, ledger_entry
from tests.factories import NodeFactory, ProjectFactory, SiteFactory, TeamFactory

D = Decimal
SUMMARY = "/api/v1/spend/summary/"
MARCH = {"from": "2026-03-01", "to": "2026-03-31"}


@pytest.fixture
def spend(db):
    alpha, beta = TeamFactory(name="Alpha"), TeamFactory(name="Beta")
    site = SiteFactory(name="use1")
    ledger_day(day=date(2026, 3, 1), site=site, team=alpha, compute="100", idle="10")
    ledger_day(day=date(2026, 3, 2), site=site, team=beta, compute="30", energy="5")
    ledger_day(day=date(2026, 4, 1), site=site, team=alpha, compute="999")
    egress(day=date(2026, 3, 3), usd="4", team=alpha)
    egress(day=date(2026, 3, 3), usd="6", team=beta, destination="gcp:eu")
    return {"alpha": alpha, "beta": beta, "site": site}


def scoped_viewer(api_client, team):
    client = api_client(Role.VIEWER)
    team.members.add(client.user)
    return client


def test_summary_groups_and_totals(admin_api, spend):
    response = admin_api.get(SUMMARY, {**MARCH, "group_by": "team"})
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["group_by"], data["from"], data["to"]) == ("team", "2026-03-01", "2026-03-31")
    assert [(r["label"], D(r["total_usd"])) for r in data["rows"]] == [("Alpha", D(100)), ("Beta", D(35))]
    assert (
        D(data["totals"]["total_usd"])
        == D(135)
        == selectors.spend_totals(start=date(2026, 3, 1), end=date(2026, 4, 1)).total_usd
    )


@pytest.mark.parametrize("dimension", selectors.SPEND_DIMENSIONS)
def test_summary_every_dimension_adds_up(admin_api, spend, dimension):
    data = admin_api.get(SUMMARY, {**MARCH, "group_by": dimension}).json()
    assert sum(D(r["total_usd"]) for r in data["rows"]) == D(data["totals"]["total_usd"]) == D(135)


@pytest.mark.parametrize("url", [SUMMARY + "?format=csv&", "/api/v1/spend/summary.csv?"])
def test_summary_csv(admin_api, spend, url):
    response = admin_api.get(url + "group_by=site&from=2026-03-01&to=2026-03-31")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["key", "label", *selectors.SUMMED_FIELDS]
    assert rows[1][1] == "use1" and D(rows[1][4]) == D(135)
    assert rows[-1][1] == "TOTAL" and D(rows[-1][4]) == D(135)


def test_summary_columns_keep_their_order_and_every_figure_is_documented():
    """CSV readers index the columns: the seven of before issue 12 stay first, in their order, and the new
    figures follow; the JSON figures are the same set, each with help text (the schema's descriptions)."""
    from billing.api.spend import SpendCSVRenderer, SpendFiguresSerializer

    before = ["compute_usd", "energy_usd", "total_usd", "idle_usd", "energy_kwh", "gpu_hours", "idle_gpu_hours"]
    added = ["co2e_kg", "broken_gpu_hours", "broken_usd", "covered_usd", "unused_commitment_usd"]
    assert list(SpendCSVRenderer.COLUMNS) == ["key", "label", *before, *added]
    fields = SpendFiguresSerializer().fields
    assert list(fields) == [*before, *added]
    assert all(field.help_text for field in fields.values())


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"group_by": "colour"}, "group_by"),
        ({"from": "2026-02-30"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"from": "2026-03-10", "to": "2026-03-01"}, "to"),
        ({"from": "2020-01-01", "to": "2026-01-01"}, "to"),
        ({"from": "0001-01-01"}, "from"),
        ({"from": "9999-12-31", "to": "9999-12-31"}, "from"),
        ({"team": "abc"}, "team"),
        ({"team": "0"}, "team"),
        ({"team": str(2**40)}, "team"),
    ],
)
def test_summary_bad_params_are_400_with_field(admin_api, spend, params, field):
    for url in (SUMMARY, "/api/v1/spend/summary.csv"):
        response = admin_api.get(url, params)
        assert response.status_code == 400, (url, response.content)
        assert field in response.json(), response.json()


def test_summary_needs_auth(client, db):
    assert client.get(SUMMARY).status_code in (401, 403)


def test_summary_scoped_viewer(api_client, spend):
    viewer = scoped_viewer(api_client, spend["alpha"])
    data = viewer.get(SUMMARY, {**MARCH, "group_by": "team"}).json()
    assert [r["label"] for r in data["rows"]] == ["Alpha"] and D(data["totals"]["total_usd"]) == D(100)
    assert viewer.get(SUMMARY, {**MARCH, "team": spend["beta"].pk}).status_code == 403
    csv_text = viewer.get("/api/v1/spend/summary.csv", {**MARCH, "group_by": "team"}).content.decode()
    assert "Beta" not in csv_text and "Alpha" in csv_text
    egress_data = viewer.get("/api/v1/spend/egress/", MARCH).json()
    assert D(egress_data["total_usd"]) == D(4) and len(egress_data["routes"]) == 1
    assert viewer.get("/api/v1/spend/egress/", {**MARCH, "team": spend["beta"].pk}).status_code == 403


def test_unscoped_viewer_team_filter(api_client, spend):
    viewer = api_client(Role.VIEWER)  # in no team: sees everything, may filter
    data = viewer.get(SUMMARY, {**MARCH, "team": spend["beta"].pk}).json()
    assert D(data["totals"]["total_usd"]) == D(35)


def test_egress_summary(admin_api, spend):
    data = admin_api.get("/api/v1/spend/egress/", MARCH).json()
    assert D(data["total_usd"]) == D(10)
    assert [(r["destination"], D(r["usd"]), r["records"]) for r in data["routes"]] == [
        ("gcp:eu", D(6), 1),
        ("onprem:dc-1", D(4), 1),
    ]
    assert admin_api.get("/api/v1/spend/egress/", {"from": "x"}).status_code == 400


def test_reconciliation(admin_api, api_client, spend):
    provider = spend["site"].provider
    BilledCost.objects.create(provider=provider, day=date(2026, 3, 1), usd=D("110"))
    url = "/api/v1/spend/reconciliation/"
    rows = admin_api.get(url, {"provider": provider.pk, "from": "2026-03-01", "to": "2026-03-02"}).json()
    assert [(r["day"], D(r["estimated_usd"]), r["billed_usd"] and D(r["billed_usd"])) for r in rows] == [
        ("2026-03-01", D(100), D(110)),
        ("2026-03-02", D(35), None),
    ]
    assert D(rows[0]["difference_usd"]) == D(10)
    assert admin_api.get(url, {"provider": 987654}).status_code == 400
    assert "provider" in admin_api.get(url).json()
    assert scoped_viewer(api_client, spend["alpha"]).get(url, {"provider": provider.pk}).status_code == 403


# --- model endpoints ---------------------------------------------------------------------------------------
class TestEgressRecordAPI(APIResourceTests):
    basename = "egressrecord"
    model = EgressRecord
    compare_fields = ("source", "destination", "bytes")
    bad_payloads = [
        ({"bytes": -1}, "bytes"),
        ({"usd": "-1.00"}, "usd"),
        ({"usd": "lots"}, "usd"),
        ({"source_provider_kind": "azure"}, "source_provider_kind"),
        ({"occurred_at": "not-a-time"}, "occurred_at"),
        ({"team": 987654}, "team"),
        ({"source": ""}, "source"),
    ]

    def make(self, **kwargs):
        return egress(day=date(2026, 3, 3), usd="1", team=kwargs.get("team") or TeamFactory())

    def create_payload(self):
        return {
            "occurred_at": "2026-03-04T10:00:00Z",
            "source": "aws:us-east-1",
            "destination": "onprem:dc-1",
            "source_provider_kind": ProviderKind.AWS,
            "bytes": 5 * 10**9,
            "usd": "0.450000",
            "team": TeamFactory().pk,
        }

    def update_payload(self, instance):
        return {"destination": "gcp:europe-west4"}

    def test_create_is_manual(self, admin_api):
        response = admin_api.post(self.list_url(), {**self.create_payload(), "cause": "placement"}, format="json")
        assert response.status_code == 201 and response.data["cause"] == EgressCause.MANUAL

    def test_project_of_another_team_is_400(self, admin_api):
        payload = {**self.create_payload(), "project": ProjectFactory().pk}
        response = admin_api.post(self.list_url(), payload, format="json")
        assert response.status_code == 400 and "project" in response.data

    def test_scoped_viewer_lists_own_team_only(self, api_client):
        mine, theirs = TeamFactory(), TeamFactory()
        own, other = self.make(team=mine), self.make(team=theirs)
        viewer = scoped_viewer(api_client, mine)
        ids = {r["id"] for r in viewer.get(self.list_url()).data["results"]}
        assert own.pk in ids and other.pk not in ids
        assert viewer.get(self.detail_url(other.pk)).status_code == 404

    def test_filters(self, admin_api):
        team = TeamFactory()
        self.make(team=team)
        egress(day=date(2026, 5, 1), usd="2", team=team)
        rows = admin_api.get(self.list_url(), {"team": team.pk, "from": "2026-04-01"}).data["results"]
        assert [r["usd"] for r in rows] == ["2.000000"]
        assert admin_api.get(self.list_url(), {"from": "junk"}).status_code == 400
        assert admin_api.get(self.list_url(), {"to": "9999-12-31"}).status_code == 200


class TestBudgetAPI(APIResourceTests):
    basename = "budget"
    model = Budget
    compare_fields = ("monthly_usd", "recipients")
    bad_payloads = [
        ({"monthly_usd": "0"}, "monthly_usd"),
        ({"monthly_usd": "much"}, "monthly_usd"),
        ({"thresholds_pct": [80, 80]}, "thresholds_pct"),
        ({"thresholds_pct": [0]}, "thresholds_pct"),
        ({"thresholds_pct": [5000]}, "thresholds_pct"),
        ({"recipients": ["not-an-email"]}, "recipients"),
        ({"team": None}, "team"),
    ]

    def make(self, **kwargs):
        return Budget.objects.create(team=kwargs.get("team") or TeamFactory(), monthly_usd=D("1000"))

    def create_payload(self):
        return {
            "team": TeamFactory().pk,
            "monthly_usd": "5000.00",
            "thresholds_pct": [100, 80],
            "recipients": ["finance@example.com"],
        }

    def update_payload(self, instance):
        return {"monthly_usd": "1234.00"}

    def test_both_team_and_project_is_400(self, admin_api):
        payload = {**self.create_payload(), "project": ProjectFactory().pk}
        response = admin_api.post(self.list_url(), payload, format="json")
        assert response.status_code == 400 and "team" in response.data

    def test_status_fields(self, admin_api):
        budget = self.make()
        ledger_day(day=selectors.utc_today(), team=budget.team, compute="900")
        data = admin_api.get(self.detail_url(budget.pk)).data
        assert D(data["month_spend_usd"]) == D(900) and D(data["month_pct"]) == D("90.0")
        assert data["state"] in {"warning", "forecast-over"}
        created = admin_api.post(self.list_url(), self.create_payload(), format="json").data
        assert created["thresholds_pct"] == [80, 100] and created["state"] == "ok"

    def test_scoped_viewer_sees_own_budgets(self, api_client):
        mine = TeamFactory()
        own = self.make(team=mine)
        project_budget = Budget.objects.create(project=ProjectFactory(team=mine), monthly_usd=D(10))
        other = self.make()
        ids = {r["id"] for r in scoped_viewer(api_client, mine).get(self.list_url()).data["results"]}
        assert ids == {own.pk, project_budget.pk} and other.pk not in ids


@pytest.mark.django_db
def test_budget_alerts_read_only_scoped_and_guarded(api_client, admin_api, django_assert_max_num_queries):
    mine, theirs = TeamFactory(), TeamFactory()
    alerts = []
    for team in (mine, theirs):
        budget = Budget.objects.create(team=team, monthly_usd=D(100))
        alerts.append(
            BudgetAlert.objects.create(
                budget=budget,
                month=date(2026, 3, 1),
                kind=BudgetAlertKind.THRESHOLD,
                threshold_pct=80,
                spend_usd=D(81),
                forecast_usd=D(90),
            )
        )
    url = reverse("api:budgetalert-list")
    admin_api.get(url)
    with django_assert_max_num_queries(6):
        assert admin_api.get(url).data["count"] == 2
    assert admin_api.post(url, {}, format="json").status_code == 405
    viewer = scoped_viewer(api_client, mine)
    assert [r["id"] for r in viewer.get(url).data["results"]] == [alerts[0].pk]
    assert admin_api.get(url, {"kind": "nope"}).status_code == 400
    assert admin_api.get(url, {"ordering": "nope"}).status_code == 400


@pytest.mark.django_db
def test_ledger_list_filters_scope_and_queries(api_client, admin_api, django_assert_max_num_queries):
    mine, theirs = TeamFactory(), TeamFactory()
    nodes = [NodeFactory(team=mine), NodeFactory(team=theirs)]
    for day in (1, 2):
        for node in nodes:
            ledger_entry(node=node, hour=datetime(2026, 3, day, 5, tzinfo=UTC), compute="3")
    url = reverse("api:ledgerentry-list")
    admin_api.get(url)
    with django_assert_max_num_queries(6):
        data = admin_api.get(url).data
    assert data["count"] == 4
    assert [r["hour"] for r in data["results"]][:2] == ["2026-03-02T05:00:00Z"] * 2  # newest first
    assert admin_api.get(url, {"node": nodes[0].pk, "from": "2026-03-02"}).data["count"] == 1
    assert admin_api.get(url, {"to": "2026-03-01"}).data["count"] == 2
    assert admin_api.get(url, {"team": mine.pk}).data["count"] == 2
    for bad in ({"from": "x"}, {"node": "x"}, {"ordering": "nope"}):
        assert admin_api.get(url, bad).status_code == 400, bad
    viewer = scoped_viewer(api_client, mine)
    assert {r["node"] for r in viewer.get(url).data["results"]} == {nodes[0].pk}
    assert viewer.get(url, {"team": theirs.pk}).data["count"] == 0
    for i in range(10):
        ledger_entry(node=NodeFactory(), hour=datetime(2026, 3, 3, i, tzinfo=UTC))
    with django_assert_max_num_queries(6):
        assert admin_api.get(url).data["count"] == 14
    assert admin_api.post(url, {}, format="json").status_code == 405


def test_summary_query_count(admin_api, spend, django_assert_max_num_queries):
    admin_api.get(SUMMARY)
    for dimension in selectors.SPEND_DIMENSIONS:
        with django_assert_max_num_queries(6):
            assert admin_api.get(SUMMARY, {**MARCH, "group_by": dimension}).status_code == 200


def test_default_period_is_this_month(admin_api, spend):
    today = selectors.utc_today()
    data = admin_api.get(SUMMARY).json()
    assert data["from"] == today.replace(day=1).isoformat() and data["to"] == today.isoformat()
    assert timedelta(days=0) <= today - date.fromisoformat(data["from"])


@pytest.mark.django_db
def test_a_team_project_or_node_with_spend_history_cannot_be_deleted(admin_api):
    from billing.models import LedgerDay, LedgerEntry, LedgerNodeDay

    project = ProjectFactory()
    team = project.team
    node = NodeFactory(team=team, project=project)
    ledger_entry(node=node, hour=datetime(2026, 4, 2, 3, tzinfo=UTC), compute="10", idle="2")
    ledger_day(day=date(2026, 4, 2), site=node.site, team=team, project=project, compute="10")
    lone = TeamFactory()  # no node, no project: only its daily spend refers to it
    ledger_day(day=date(2026, 4, 2), team=lone, compute="5")
    before = (LedgerEntry.objects.count(), LedgerDay.objects.count(), LedgerNodeDay.objects.count())
    assert before == (1, 2, 1)
    for url in (
        reverse("api:team-detail", kwargs={"pk": lone.pk}),
        reverse("api:team-detail", kwargs={"pk": team.pk}),
        reverse("api:project-detail", kwargs={"pk": project.pk}),
        reverse("api:node-detail", kwargs={"pk": node.pk}),
    ):
        response = admin_api.delete(url)
        assert response.status_code == 409, (url, response.data)
    assert (LedgerEntry.objects.count(), LedgerDay.objects.count(), LedgerNodeDay.objects.count()) == before
    assert selectors.spend_totals(start=date(2026, 4, 2), end=date(2026, 4, 3), teams=[team.pk]).total_usd == 10
