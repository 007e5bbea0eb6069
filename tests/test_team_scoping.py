"""Team scoping (fleet.scoping) everywhere: every team-scoped API endpoint and page honours ``restrict(user)``.

Two teams each have one row of every team-scoped model (ledger entry and day, node day, egress record, budget,
budget alert, commitment, report subscription and delivery, job, placement), and there is a whole-fleet report
subscription. A viewer who is a member of the first team sees that team's rows and nothing of the other (absent
from lists, 404 on detail, preview and pages); an operator sees everything. A router check fails when a viewset
of a team-scoped model is added to the API without being listed here.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from billing import selectors
from billing.choices import BudgetAlertKind, EgressCause
from billing.models import (
    Budget,
    BudgetAlert,
    Commitment,
    EgressRecord,
    LedgerDay,
    LedgerEntry,
    LedgerNodeDay,
    ReportDelivery,
    ReportSubscription,
)
from config.api_urls import router
from core.choices import Role
from fleet.choices import NodeLifecycle
from fleet.scoping import TeamScopedQuerySet, TeamScopedViewMixin, team_scope
from scheduler.models import Job, Placement, TeamQuota
from tests.factories import NodeFactory, ProjectFactory, SiteFactory, TeamFactory

pytestmark = pytest.mark.django_db

D = Decimal
# Every API viewset of a team-scoped model, by router basename, and the model whose rows the world makes.
SCOPED_API = {
    "ledgerentry": "ledger_entry",
    "egressrecord": "egress_record",
    "budget": "budget",
    "budgetalert": "budget_alert",
    "report-subscription": "subscription",
    "report-delivery": "delivery",
    "job": "job",
    "placement": "placement",
    "commitment": "commitment",
    "teamquota": "quota",
}
# Pages and actions of one row: (URL name, the row's key in the world); a viewer may read them all.
SCOPED_DETAILS = [
    ("api:report-subscription-preview", "subscription"),
    ("report-preview", "subscription"),
    ("scheduler-job", "job"),
    ("api:job-footprint", "job"),
]
# Pages that list rows of several models: every marker of the other team must be absent from them.
SCOPED_PAGES = ["spend", "spend-idle-nodes", "report-list", "scheduler"]


def _team_rows(*, team, name: str, compute: str) -> dict:
    """One row of every team-scoped model for ``team``; ``name`` marks its names, ``compute`` its $."""
    site = SiteFactory(name=f"{name}-site")
    project = ProjectFactory(team=team, name=f"{name}-project")
    node = NodeFactory(site=site, name=f"{name}-node", team=team, project=project)
    today = selectors.utc_today()
    dims = {
        "provider": site.provider,
        "provider_kind": site.provider.kind,
        "site": site,
        "team": team,
        "project": project,
        "gpu_model": "NVIDIA H100 80GB HBM3",
        "lifecycle": NodeLifecycle.ON_DEMAND,
    }
    figures = {
        "compute_usd": D(compute),
        "energy_kwh": D(0),
        "energy_usd": D(0),
        "gpu_hours": D(8),
        "idle_gpu_hours": D(1),
        "idle_usd": D(compute) / 10,
    }
    entry = LedgerEntry.objects.create(
        node=node,
        hour=datetime.combine(today, datetime.min.time(), tzinfo=UTC),
        gpu_count=8,
        active_s=3600,
        rate_usd_per_h=D(compute),
        **dims,
        **figures,
    )
    LedgerDay.objects.create(day=today, nodes=1, total_usd=D(compute), **dims, **figures)
    LedgerNodeDay.objects.create(
        day=today, node=node, team=team, idle_usd=D(compute) / 10, idle_gpu_hours=D(1), total_usd=D(compute)
    )
    egress = EgressRecord.objects.create(
        occurred_at=datetime.combine(today, datetime.min.time(), tzinfo=UTC) + timedelta(hours=1),
        source=f"aws:{name}",
        destination="onprem:dc-1",
        source_provider_kind=site.provider.kind,
        bytes=10**9,
        usd=D(compute) / 100,
        cause=EgressCause.MANUAL,
        team=team,
    )
    budget = Budget.objects.create(project=project, monthly_usd=D(compute) * 100, recipients=["a@example.com"])
    alert = BudgetAlert.objects.create(
        budget=budget,
        month=selectors.month_start_of(today),
        kind=BudgetAlertKind.THRESHOLD,
        threshold_pct=50,
        spend_usd=D(compute),
        forecast_usd=D(compute),
    )
    subscription = ReportSubscription.objects.create(name=f"{name}-report", recipients=["a@example.com"], team=team)
    delivery = ReportDelivery.objects.create(
        subscription=subscription, period_start=today - timedelta(days=7), period_end=today
    )
    job = Job.objects.create(name=f"{name}-job", team=team, project=project, gpu_count=1, expected_hours=D(1))
    placement = Placement.objects.create(
        job=job,
        target_kind="node",
        node=node,
        gpu_count=1,
        provider_kind=site.provider.kind,
        usd_per_h=D(compute),
        compute_usd=D(compute),
        egress_usd=D(0),
        total_usd=D(compute),
        policy_version="test",
    )
    commitment = Commitment.objects.create(
        provider=site.provider,
        name=f"{name}-plan",
        kind="savings-plan",
        basis="spend",
        hourly_commitment_usd=D(compute),
        discount_pct=D(20),
        start=today,
        end=today + timedelta(days=365),
        team=team,
    )
    return {
        "team": team,
        "commitment": commitment,
        "ledger_entry": entry,
        "egress_record": egress,
        "budget": budget,
        "budget_alert": alert,
        "subscription": subscription,
        "delivery": delivery,
        "job": job,
        "placement": placement,
        "quota": TeamQuota.objects.create(team=team, gpu_model="H100"),
    }


@pytest.fixture
def world(db):
    """The rows of two teams ("mine": $111, "theirs": $7777 marked 'zsecret') and a whole-fleet subscription."""
    mine = _team_rows(team=TeamFactory(name="Mine"), name="mine", compute="111")
    theirs = _team_rows(team=TeamFactory(name="Zsecret"), name="zsecret", compute="7777")
    fleet = ReportSubscription.objects.create(name="zsecret-fleet-report", recipients=["a@example.com"])
    return {"mine": mine, "theirs": theirs, "fleet_subscription": fleet}


@pytest.fixture
def viewer(api_client, world):
    """An API client of a viewer who is a member of the first team."""
    client = api_client(Role.VIEWER)
    world["mine"]["team"].members.add(client.user)
    return client


@pytest.fixture
def page_viewer(client, viewer):
    """The browser session of the same limited viewer."""
    client.force_login(viewer.user)
    return client


def _ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    data = response.json()
    return {row["id"] for row in (data["results"] if isinstance(data, dict) else data)}


class TestTeamScoping:
    """A limited viewer sees their own team only; an operator sees every team; every scoped endpoint is listed."""

    def test_the_scope_rule(self, world, viewer, make_user):
        assert team_scope(viewer.user) == [world["mine"]["team"].pk]
        assert team_scope(make_user(Role.OPERATOR)) is None
        assert team_scope(make_user(Role.VIEWER)) is None  # a viewer of no team sees everything

    @pytest.mark.parametrize("basename", sorted(SCOPED_API))
    def test_api_list_and_detail(self, world, viewer, api_client, basename):
        key = SCOPED_API[basename]
        own, other = world["mine"][key], world["theirs"][key]
        listed = _ids(viewer.get(reverse(f"api:{basename}-list"), {"page_size": 100}))
        assert own.pk in listed and other.pk not in listed
        assert viewer.get(reverse(f"api:{basename}-detail", args=[own.pk])).status_code == 200
        assert viewer.get(reverse(f"api:{basename}-detail", args=[other.pk])).status_code == 404
        everything = _ids(api_client(Role.OPERATOR).get(reverse(f"api:{basename}-list"), {"page_size": 100}))
        assert {own.pk, other.pk} <= everything

    def test_whole_fleet_subscriptions_are_hidden_from_a_limited_viewer(self, world, viewer, api_client):
        fleet = world["fleet_subscription"]
        assert fleet.pk not in _ids(viewer.get(reverse("api:report-subscription-list")))
        assert viewer.get(reverse("api:report-subscription-detail", args=[fleet.pk])).status_code == 404
        assert fleet.pk in _ids(api_client(Role.OPERATOR).get(reverse("api:report-subscription-list")))

    @pytest.mark.parametrize(("url_name", "key"), SCOPED_DETAILS)
    def test_detail_pages_and_previews(self, world, viewer, page_viewer, url_name, key):
        client = viewer if url_name.startswith("api:") else page_viewer
        assert client.get(reverse(url_name, args=[world["mine"][key].pk])).status_code == 200
        assert client.get(reverse(url_name, args=[world["theirs"][key].pk])).status_code == 404
        if key == "subscription":
            assert client.get(reverse(url_name, args=[world["fleet_subscription"].pk])).status_code == 404

    @pytest.mark.parametrize("url_name", SCOPED_PAGES)
    def test_pages_show_only_the_own_team(self, world, page_viewer, client, make_user, url_name):
        body = page_viewer.get(reverse(url_name)).content.decode()
        assert "mine-" in body and "zsecret" not in body.lower()
        client.force_login(make_user(Role.OPERATOR))
        body = client.get(reverse(url_name)).content.decode()
        assert "mine-" in body and "zsecret" in body.lower()

    @pytest.mark.parametrize("url_name", ["api:spend-summary", "api:spend-summary-csv", "api:spend-egress"])
    def test_spend_summaries_and_csv(self, world, viewer, api_client, url_name):
        own, other = world["mine"]["team"], world["theirs"]["team"]
        params = {"group_by": "team"} if "summary" in url_name else {}
        mine = viewer.get(reverse(url_name), params)
        everyone = api_client(Role.OPERATOR).get(reverse(url_name), params)
        if url_name.endswith("csv"):
            labels = {row[1] for row in csv.reader(io.StringIO(mine.content.decode()))}
            assert own.name in labels and other.name not in labels
            labels = {row[1] for row in csv.reader(io.StringIO(everyone.content.decode()))}
            assert {own.name, other.name} <= labels
        elif "summary" in url_name:
            assert [row["label"] for row in mine.json()["rows"]] == [own.name]
            assert {row["label"] for row in everyone.json()["rows"]} == {own.name, other.name}
        else:
            assert [row["source"] for row in mine.json()["routes"]] == ["aws:mine"]
            assert {row["source"] for row in everyone.json()["routes"]} == {"aws:mine", "aws:zsecret"}
        # Asking for another team is refused outright, not answered with zeros.
        assert viewer.get(reverse(url_name), {**params, "team": other.pk}).status_code == 403

    def test_focus_export(self, world, viewer, api_client):
        """The FOCUS dataset holds the viewer's team's charges only (its Tags name the team); an operator's all."""
        own, other = world["mine"]["team"], world["theirs"]["team"]

        def teams(client) -> set[str]:
            response = client.get(reverse("api:spend-focus-csv"))
            assert response.status_code == 200, response.content
            body = b"".join(response.streaming_content).decode()
            return {json.loads(row["Tags"]).get("team") for row in csv.DictReader(io.StringIO(body))}

        assert teams(viewer) == {own.slug}
        assert teams(api_client(Role.OPERATOR)) >= {own.slug, other.slug}
        assert viewer.get(reverse("api:spend-focus-csv"), {"team": other.pk}).status_code == 403

    def test_reconciliation_is_refused_to_a_limited_viewer(self, world, viewer):
        provider = world["mine"]["ledger_entry"].provider
        assert viewer.get(reverse("api:spend-reconciliation"), {"provider": provider.pk}).status_code == 403

    def test_every_team_scoped_viewset_is_listed_and_restricted(self):
        scoped = {
            basename: viewset
            for _, viewset, basename in router.registry
            if isinstance(getattr(viewset, "queryset", None), TeamScopedQuerySet)
        }
        assert set(scoped) == set(SCOPED_API), "a team-scoped viewset was added or removed: list it in SCOPED_API"
        unrestricted = [name for name, viewset in scoped.items() if not issubclass(viewset, TeamScopedViewMixin)]
        assert not unrestricted
