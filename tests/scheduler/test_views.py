"""The scheduler pages: queue, submit form with field errors, what-if (full page and HTMX), place now, job detail."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from scheduler.choices import JobState
from scheduler.models import Job, Placement
from scheduler.placements import jobs_place

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def login(client, make_user):
    def as_role(role: str):
        client.force_login(make_user(role))
        return client

    return as_role


def form_data(scenario, prefix: str = "job", **overrides) -> dict:
    data = {
        "name": "train",
        "team": scenario.team.pk,
        "project": scenario.project.pk,
        "gpu_count": "8",
        "gpu_model": "H100",
        "expected_hours": "10",
        "datasets": [scenario.dataset.pk],
        "priority": "0",
        "allowed_regions": "",
    }
    data.update(overrides)
    return {f"{prefix}-{k}": v for k, v in data.items()}


def test_queue_shows_pending_reasons_placed_and_running(login, scenario):
    placed = scenario.job(name="placed-one")
    jobs_place()
    blocked = scenario.job(name="blocked-one", gpu_model="B200")
    jobs_place()
    running = scenario.job(name="running-one", gpu_count=1, allowed_providers=["aws"])
    jobs_place()
    Job.objects.filter(pk=running.pk).update(state=JobState.RUNNING)
    response = login("viewer").get(reverse("scheduler"))
    assert response.status_code == 200
    queue = response.context["queue"]
    assert [j.pk for j in queue.pending] == [blocked.pk]
    assert [j.pk for j in queue.placed] == [placed.pk]
    assert [j.pk for j in queue.running] == [running.pk]
    body = response.content.decode()
    assert "B200" in body  # the pending reason
    assert "277.80" in body  # the placed job's total
    assert "Submit a job" not in body and "Place now" not in body  # viewers cannot


def test_queue_partial_for_htmx_and_polling_stops_when_idle(login, scenario):
    client = login("viewer")
    response = client.get(reverse("scheduler"), HTTP_HX_TARGET="queue", **HTMX)
    assert response.status_code == 286
    assert b"<h1>" not in response.content
    scenario.job()
    response = client.get(reverse("scheduler"), HTTP_HX_TARGET="queue", **HTMX)
    assert response.status_code == 200 and b'hx-trigger="every 10s, placed from:body"' in response.content


def test_queue_query_count_does_not_grow(login, scenario):
    client = login("operator")
    scenario.job(name="a", gpu_count=1)
    jobs_place()
    client.get(reverse("scheduler"))
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("scheduler"))
    for i in range(6):
        scenario.job(name=f"more-{i}", gpu_count=1)
    scenario.job(name="stuck", gpu_model="B200")
    jobs_place()
    with CaptureQueriesContext(connection) as many:
        client.get(reverse("scheduler"))
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]


def test_submit_creates_a_pending_job_and_redirects(login, scenario, django_capture_on_commit_callbacks):
    client = login("operator")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("scheduler-job-create"), form_data(scenario))
    job = Job.objects.get()
    assert response.status_code == 302 and response.url == reverse("scheduler-job", kwargs={"pk": job.pk})
    assert job.state == JobState.PENDING and list(job.datasets.all()) == [scenario.dataset]
    assert len(callbacks) == 1  # the placement run


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"gpu_count": "0"}, "gpu_count"),
        ({"gpu_model": "H1000"}, "gpu_model"),
        ({"expected_hours": "0"}, "expected_hours"),
        ({"expected_hours": "soon"}, "expected_hours"),
        ({"min_gpu_memory_mib": "40000"}, "min_gpu_memory_mib"),
        ({"datasets": ["987654"]}, "datasets"),
        ({"allowed_providers": ["azure"]}, "allowed_providers"),
        ({"allowed_regions": "us-east-1, us-east-1"}, "allowed_regions"),
        ({"max_usd_per_h": "-2"}, "max_usd_per_h"),
        ({"name": ""}, "name"),
        ({"team": ""}, "team"),
    ],
)
def test_submit_form_shows_field_errors(login, scenario, overrides, field):
    response = login("operator").post(reverse("scheduler-job-create"), form_data(scenario, **overrides))
    assert response.status_code == 400
    assert field in response.context["job_form"].errors
    assert f'data-testid="error-{field}"' in response.content.decode()
    assert not Job.objects.exists()


def test_project_of_another_team_is_refused(login, scenario):
    from tests.factories import ProjectFactory

    response = login("operator").post(reverse("scheduler-job-create"), form_data(scenario, project=ProjectFactory().pk))
    assert response.status_code == 400 and "another team" in str(response.context["job_form"].errors["project"])


def test_viewer_cannot_submit_or_place(login, scenario):
    client = login("viewer")
    assert client.post(reverse("scheduler-job-create"), form_data(scenario)).status_code == 403
    assert client.post(reverse("scheduler-place")).status_code == 403
    assert not Job.objects.exists()


def test_place_now_places_pending_jobs(login, scenario, worker):
    job = scenario.job()
    client = login("operator")
    with worker():
        response = client.post(reverse("scheduler-place"))
    assert response.status_code == 302  # to the run's page: a browser without JavaScript reloads it
    page = client.get(response["Location"])
    assert "Placed 1 job(s); 0 still pending." in page.content.decode()
    assert Placement.objects.get(job=job).total_usd == Decimal("277.80")


def test_place_now_with_htmx_shows_the_run_polling_until_it_is_done(
    login, scenario, django_capture_on_commit_callbacks
):
    from scheduler import tasks
    from scheduler.models import PlaceRun

    job = scenario.job()
    client = login("operator")
    with django_capture_on_commit_callbacks(execute=False):  # no worker yet: the run stays queued
        response = client.post(reverse("scheduler-place"), **HTMX)
    run = PlaceRun.objects.get()
    poll = reverse("scheduler-place-run", args=[run.pk])
    body = response.content.decode()
    assert response.status_code == 200 and "<h1>" not in body
    assert f'hx-get="{poll}"' in body and 'hx-trigger="every 1s"' in body and "queued for a worker" in body
    assert Job.objects.get(pk=job.pk).state == "pending"  # nothing placed inside the request

    still = client.get(poll, **HTMX)
    assert still.status_code == 200 and "HX-Trigger" not in still

    tasks.jobs_place(run.pk)  # the worker runs it
    done = client.get(poll, **HTMX)
    assert done.status_code == 286  # htmx stops polling
    assert done["HX-Trigger"] == "placed"  # the queue refreshes
    assert "Placed 1 job(s); 0 still pending." in done.content.decode() and "hx-get" not in done.content.decode()


def test_a_failed_placement_run_says_why(login, scenario, monkeypatch):
    from scheduler import tasks
    from scheduler.models import PlaceRun

    client = login("operator")
    response = client.post(reverse("scheduler-place"))
    run = PlaceRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("scheduler-place-run", args=[run.pk])
    monkeypatch.setattr("scheduler.placements.place_batch", lambda *a, **k: 1 / 0)  # a defect in the optimiser
    scenario.job()
    with pytest.raises(ZeroDivisionError):
        tasks.jobs_place(run.pk)
    run.refresh_from_db()
    assert (run.status, run.error) == ("failed", "ZeroDivisionError: division by zero")
    page = client.get(reverse("scheduler-place-run", args=[run.pk])).content.decode()
    assert "failed: ZeroDivisionError: division by zero" in page
    assert tasks.jobs_place(run.pk) is None  # a duplicate delivery of a finished run does nothing


def test_what_if_htmx_returns_the_ranked_table(login, scenario):
    response = login("viewer").post(reverse("scheduler-what-if"), form_data(scenario, prefix="whatif"), **HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert "<h1>" not in body
    assert "alternatives-table" in body
    assert body.index("dc-1") < body.index("us-east-1") < body.index("us-west-2") < body.index("us-central1")
    assert "$97.80 compute + $180.00 egress" in body  # on-prem: money to the cent, as everywhere (core.figures)
    assert not Job.objects.exists()


def test_what_if_without_javascript_renders_the_page_with_errors(login, scenario):
    response = login("viewer").post(
        reverse("scheduler-what-if"), form_data(scenario, prefix="whatif", gpu_count="0", team="")
    )
    assert response.status_code == 400
    assert "<h1>Scheduler</h1>" in response.content.decode()
    assert "gpu_count" in response.context["what_if_form"].errors
    assert "team" not in response.context["what_if_form"].errors  # optional for a what-if


def test_job_detail_shows_breakdown_and_alternatives(login, scenario):
    job = scenario.job()
    jobs_place()
    response = login("viewer").get(reverse("scheduler-job", kwargs={"pk": job.pk}))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-testid="breakdown-table"' in body and "corpus-2tb" in body and "aws:us-east-1" in body
    assert "277.80" in body and "550.40" in body and "1,062.50" in body
    assert login("viewer").get(reverse("scheduler-job", kwargs={"pk": 987654})).status_code == 404


def test_nav_links_to_the_scheduler(login):
    body = login("viewer").get(reverse("overview")).content.decode()
    assert f'href="{reverse("scheduler")}"' in body


def test_what_if_without_egress_rates_says_so(login, scenario):
    from billing.models import EgressRate

    EgressRate.objects.all().delete()
    response = login("viewer").post(reverse("scheduler-what-if"), form_data(scenario, prefix="whatif"), **HTMX)
    assert response.status_code == 200
    assert "Cannot price moving these datasets" in response.content.decode()


def test_queue_counts_every_pending_job_beyond_the_rows_shown(login, scenario, monkeypatch, make_user):
    from scheduler import selectors

    for i in range(3):
        scenario.job(name=f"p{i}", gpu_model="B200")
    queue = selectors.job_queue(user=make_user("viewer"), limit=2)
    assert len(queue.pending) == 2 and queue.pending_count == 3
    monkeypatch.setattr(selectors.job_queue, "__kwdefaults__", {"limit": 2})
    body = login("viewer").get(reverse("scheduler")).content.decode()
    assert '<span class="muted" data-testid="pending-count">3</span>' in body


def test_form_and_api_share_the_job_rules():
    from scheduler.api.serializers import job_request_errors

    errors = job_request_errors(
        team=None, project=None, gpu_model="H100", min_gpu_memory_mib=1, allowed_regions=["a", "a"]
    )
    assert set(errors) == {"min_gpu_memory_mib", "allowed_regions"}


def test_a_run_no_worker_finished_stops_polling_and_says_why(login, scenario):
    from datetime import timedelta

    from django.utils import timezone

    from scheduler.models import PlaceRun

    run = PlaceRun.objects.create()
    PlaceRun.objects.filter(pk=run.pk).update(requested_at=timezone.now() - timedelta(minutes=6))
    response = login("viewer").get(reverse("scheduler-place-run", args=[run.pk]), **HTMX)
    assert response.status_code == 286  # htmx stops polling
    body = response.content.decode()
    assert "has not finished in 5 minutes: is a worker consuming the scheduler queue?" in body
    assert "hx-get" not in body


def test_the_run_page_needs_the_permission_to_view_runs(client, scenario, django_user_model):
    from scheduler.models import PlaceRun

    run = PlaceRun.objects.create()
    client.force_login(django_user_model.objects.create_user(username="nobody"))  # signed in, no role
    assert client.get(reverse("scheduler-place-run", args=[run.pk])).status_code == 403
