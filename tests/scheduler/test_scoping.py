"""Team scoping of the scheduler: a viewer of Research sees Research's jobs and placements only, everywhere.

The fleet is the hand-checked scenario (see conftest). Research has a job placed on the on-prem node ($277.80)
and one pending; Vision has one placed on GCP, one running on AWS and one pending, each with costs that appear
nowhere else, so a page or an answer that shows any of them is caught by its name or its $.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from rest_framework.test import APIClient

from core.choices import Role
from core.services import api_token_create
from fleet.models import Team
from scheduler.choices import JobState
from scheduler.jobs import job_transition
from scheduler.models import Job, Placement
from scheduler.placements import jobs_place
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
# Vision's names and the $ of its placements (compute and total): none may show to a Research viewer.
VISION_NAMES = ("vision-secret-placed", "vision-secret-running", "vision-secret-pending")
VISION_COSTS = ("617.75", "797.75", "165.12")
RESEARCH_TOTAL = "277.80"


def token_client(user) -> APIClient:
    """An API client that authenticates as ``user`` with a real read-write bearer token."""
    _, secret = api_token_create(user=user, name="test", read_only=False)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def assert_no_vision(body: str) -> None:
    """Neither a Vision job's name nor any of its placements' $ is in ``body``."""
    leaked = [text for text in VISION_NAMES + VISION_COSTS if text in body]
    assert not leaked, leaked


@pytest.fixture
def world(scenario):
    """Research's and Vision's jobs, placed and run as the module docstring says."""
    vision = Team.objects.create(name="Vision", slug="vision")
    vision_project = ProjectFactory(team=vision, name="Detect", slug="detect")
    research_placed = scenario.job(name="research-train")
    # 7 h of GCP a3-highgpu-8g: 7 × 88.25 = $617.75 compute + $180 egress = $797.75.
    vision_placed = scenario.job(
        name="vision-secret-placed", team=vision, project=vision_project, allowed_providers=["gcp"], expected_hours=7
    )
    # 3 h of AWS p5.48xlarge in the data's region: 3 × 55.04 = $165.12, no egress.
    vision_running = scenario.job(
        name="vision-secret-running", team=vision, project=vision_project, allowed_providers=["aws"], expected_hours=3
    )
    report = jobs_place()
    assert sorted(report.placed) == sorted([research_placed.pk, vision_placed.pk, vision_running.pk]), report
    job_transition(job=vision_running, state=JobState.RUNNING)
    research_pending = scenario.job(name="research-blocked", gpu_model="B200")
    vision_pending = scenario.job(name="vision-secret-pending", team=vision, project=vision_project, gpu_model="B200")
    jobs_place()
    return {
        "research": scenario.team,
        "vision": vision,
        "research_placed": research_placed,
        "research_pending": research_pending,
        "vision_jobs": [vision_placed, vision_running, vision_pending],
        "vision_placements": list(Placement.objects.filter(job__team=vision).order_by("pk")),
    }


@pytest.fixture
def research_viewer(make_user, world):
    """A viewer who is a member of Research."""
    user = make_user(Role.VIEWER)
    world["research"].members.add(user)
    return user


@pytest.fixture
def research_writer(make_user, world):
    """A member of Research who may submit, edit, delete and move jobs but not see every team's spend (a custom
    grant: the operator role also sees every team)."""
    user = make_user(Role.VIEWER)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="scheduler", codename__in=("add_job", "change_job"))
    )
    user.user_permissions.add(Permission.objects.get(content_type__app_label="scheduler", codename="delete_job"))
    world["research"].members.add(user)
    return user


def what_if_form(team_pk: int, dataset_pk: int) -> dict:
    """The page's what-if form, asking for ``team``'s 8 H100s for 10 hours on the dataset."""
    data = {"name": "", "team": team_pk, "project": "", "gpu_count": "8", "gpu_model": "H100"}
    data.update(expected_hours="10", datasets=[dataset_pk], allowed_regions="")
    return {f"whatif-{k}": v for k, v in data.items()}


class TestResearchViewerSeesOnlyResearch:
    """Every scheduler API endpoint and page, walked as a viewer of Research."""

    def test_job_list_and_filters(self, research_viewer, world):
        api = token_client(research_viewer)
        response = api.get(reverse("api:job-list"), {"page_size": 100})
        assert response.status_code == 200
        assert sorted(row["name"] for row in response.data["results"]) == ["research-blocked", "research-train"]
        assert response.data["count"] == 2
        assert_no_vision(response.content.decode())
        for params in ({"team": "vision"}, {"state": ["placed", "running", "pending"]}, {"ordering": "-priority"}):
            body = api.get(reverse("api:job-list"), params).content.decode()
            assert_no_vision(body)

    def test_job_detail_of_another_team_is_404(self, research_viewer, world):
        api = token_client(research_viewer)
        own = api.get(reverse("api:job-detail", kwargs={"pk": world["research_placed"].pk}))
        assert own.status_code == 200 and own.data["name"] == "research-train"
        for job in world["vision_jobs"]:
            response = api.get(reverse("api:job-detail", kwargs={"pk": job.pk}))
            assert response.status_code == 404, (job.name, response.status_code)
            assert_no_vision(response.content.decode())

    def test_placement_list_detail_and_filters(self, research_viewer, world):
        api = token_client(research_viewer)
        response = api.get(reverse("api:placement-list"), {"page_size": 100})
        assert response.status_code == 200
        rows = response.data["results"]
        assert [row["job_name"] for row in rows] == ["research-train"]
        assert rows[0]["total_usd"] == "277.800000" and len(rows[0]["alternatives"]) == 4
        assert_no_vision(response.content.decode())
        for placement in world["vision_placements"]:
            detail = api.get(reverse("api:placement-detail", kwargs={"pk": placement.pk}))
            assert detail.status_code == 404
            assert_no_vision(detail.content.decode())
        # Filtering by another team's job answers as for a job that does not exist (no existence oracle).
        absent = api.get(reverse("api:placement-list"), {"job": 987654})
        other = api.get(reverse("api:placement-list"), {"job": world["vision_jobs"][0].pk})
        assert other.status_code == absent.status_code == 400 and "job" in other.data
        for params in ({"active": "true"}, {"target_kind": "offer"}, {"ordering": "-total_usd"}):
            assert_no_vision(api.get(reverse("api:placement-list"), params).content.decode())

    def test_what_if_for_another_team_is_refused(self, research_viewer, world, scenario):
        api = token_client(research_viewer)
        payload = {"gpu_count": 8, "gpu_model": "H100", "expected_hours": "10", "datasets": [scenario.dataset.pk]}
        own = api.post(reverse("api:job-what-if"), {**payload, "team": world["research"].pk}, format="json")
        assert own.status_code == 200 and own.data[0]["total_usd"] == "550.400000"  # the node is taken
        other = api.post(reverse("api:job-what-if"), {**payload, "team": world["vision"].pk}, format="json")
        assert other.status_code == 400 and "team" in other.data

    def test_viewer_writes_are_403_whatever_the_team(self, research_viewer, world):
        api = token_client(research_viewer)
        for job in (world["research_pending"], world["vision_jobs"][2]):
            detail = reverse("api:job-detail", kwargs={"pk": job.pk})
            assert api.patch(detail, {"priority": 5}, format="json").status_code == 403
            assert api.delete(detail).status_code == 403
            transition = reverse("api:job-transition", kwargs={"pk": job.pk})
            assert api.post(transition, {"state": "cancelled"}, format="json").status_code == 403
        assert api.post(reverse("api:job-place")).status_code == 403
        assert Job.objects.filter(state=JobState.CANCELLED).count() == 0

    def test_scheduler_page_and_queue_partial(self, client, research_viewer, world):
        client.force_login(research_viewer)
        response = client.get(reverse("scheduler"))
        assert response.status_code == 200
        body = response.content.decode()
        assert "research-train" in body and RESEARCH_TOTAL in body and "research-blocked" in body
        assert_no_vision(body)
        queue = response.context["queue"]
        assert queue.pending_count == 1 and [j.name for j in queue.pending] == ["research-blocked"]
        assert [j.name for j in queue.placed] == ["research-train"] and queue.running == []
        partial = client.get(reverse("scheduler"), HTTP_HX_TARGET="queue", **HTMX)
        assert partial.status_code == 200 and "research-train" in partial.content.decode()
        assert_no_vision(partial.content.decode())

    def test_job_page_of_another_team_is_404(self, client, research_viewer, world):
        client.force_login(research_viewer)
        own = client.get(reverse("scheduler-job", kwargs={"pk": world["research_placed"].pk}))
        assert own.status_code == 200 and RESEARCH_TOTAL in own.content.decode()
        for job in world["vision_jobs"]:
            response = client.get(reverse("scheduler-job", kwargs={"pk": job.pk}))
            assert response.status_code == 404, job.name
            assert_no_vision(response.content.decode())

    def test_what_if_page_offers_and_accepts_only_own_teams(self, client, research_viewer, world, scenario):
        client.force_login(research_viewer)
        page = client.get(reverse("scheduler"))
        assert list(page.context["what_if_form"].fields["team"].queryset) == [world["research"]]
        own = client.post(reverse("scheduler-what-if"), what_if_form(world["research"].pk, scenario.dataset.pk), **HTMX)
        assert own.status_code == 200 and "alternatives-table" in own.content.decode()
        other = client.post(reverse("scheduler-what-if"), what_if_form(world["vision"].pk, scenario.dataset.pk))
        assert other.status_code == 400 and "team" in other.context["what_if_form"].errors
        assert_no_vision(other.content.decode())


class TestScopedWriter:
    """A Research member granted the job write permissions (not the operator role) acts on Research only."""

    def test_other_teams_jobs_cannot_be_edited_deleted_or_moved(self, research_writer, world):
        api = token_client(research_writer)
        for job in world["vision_jobs"]:
            detail = reverse("api:job-detail", kwargs={"pk": job.pk})
            assert api.patch(detail, {"priority": 5}, format="json").status_code == 404
            assert api.delete(detail).status_code == 404
            transition = reverse("api:job-transition", kwargs={"pk": job.pk})
            assert api.post(transition, {"state": "cancelled"}, format="json").status_code == 404
        assert not Job.objects.filter(team=world["vision"], state=JobState.CANCELLED).exists()
        assert Job.objects.filter(team=world["vision"]).count() == 3
        own = reverse("api:job-transition", kwargs={"pk": world["research_pending"].pk})
        assert api.post(own, {"state": "cancelled"}, format="json").data["state"] == "cancelled"

    def test_submission_only_for_own_teams(self, research_writer, world, client, scenario):
        api = token_client(research_writer)
        payload = {"name": "x", "gpu_count": 1, "expected_hours": "1"}
        refused = api.post(reverse("api:job-list"), {**payload, "team": world["vision"].pk}, format="json")
        assert refused.status_code == 400 and "team" in refused.data
        accepted = api.post(reverse("api:job-list"), {**payload, "team": world["research"].pk}, format="json")
        assert accepted.status_code == 201, accepted.content
        client.force_login(research_writer)
        data = {"name": "y", "team": world["vision"].pk, "gpu_count": "1", "expected_hours": "1", "priority": "0"}
        page = client.post(reverse("scheduler-job-create"), {f"job-{k}": v for k, v in data.items()})
        assert page.status_code == 400 and "team" in page.context["job_form"].errors
        assert not Job.objects.filter(name__in=("x", "y"), team=world["vision"]).exists()

    def test_place_reports_only_own_teams_jobs(self, research_writer, world, scenario, worker):
        research_new = scenario.job(name="research-new", gpu_count=1, allowed_providers=["aws"])
        vision_new = scenario.job(name="vision-new", team=world["vision"], gpu_count=1, allowed_providers=["aws"])
        client = token_client(research_writer)
        with worker():
            response = client.post(reverse("api:job-place"))
        assert response.status_code == 202, response.content
        report = client.get(response.data["url"]).data["report"]
        assert report["placed"] == [research_new.pk]
        assert list(report["unplaced"]) == [str(world["research_pending"].pk)]
        # Every pending job was placed, not only Research's: the run is fleet-wide, only its report is scoped.
        assert Job.objects.get(pk=vision_new.pk).state == JobState.PLACED


class TestOperatorsSeeEverything:
    """Operators and admins see and act on every team's jobs, as for spend."""

    def test_operator_lists_every_team_and_acts_on_them(self, api_client, world, client, make_user):
        operator = api_client(Role.OPERATOR)
        world["research"].members.add(operator.user)  # a member of a team still sees all
        names = {row["name"] for row in operator.get(reverse("api:job-list"), {"page_size": 100}).data["results"]}
        assert set(VISION_NAMES) <= names and "research-train" in names
        totals = {row["total_usd"] for row in operator.get(reverse("api:placement-list")).data["results"]}
        assert {"797.750000", "165.120000", "277.800000"} <= totals
        running = world["vision_jobs"][1]
        moved = operator.post(reverse("api:job-transition", kwargs={"pk": running.pk}), {"state": "succeeded"})
        assert moved.status_code == 200 and moved.data["state"] == "succeeded"
        client.force_login(make_user(Role.ADMIN))
        body = client.get(reverse("scheduler-job", kwargs={"pk": world["vision_jobs"][0].pk})).content.decode()
        assert "797.75" in body

    def test_a_viewer_of_no_team_sees_every_team(self, api_client, world):
        viewer = api_client(Role.VIEWER)
        assert viewer.get(reverse("api:job-list")).data["count"] == 5
        assert Decimal(
            viewer.get(reverse("api:placement-list"), {"ordering": "-total_usd"}).data["results"][0]["total_usd"]
        ) == Decimal("797.75")
