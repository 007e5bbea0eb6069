"""A job's footprint (scheduler/carbon.py) from hand-made ledger rows: pro-rated by the hours its placements
overlap and by its share of a node's GPUs; shown on the job page and at /api/v1/jobs/{id}/footprint/."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from billing.models import LedgerEntry
from core.choices import Role
from fleet.choices import NodeLifecycle
from scheduler.carbon import job_footprint, job_spans
from scheduler.choices import JobState, TargetKind
from scheduler.models import Job, Placement
from tests.factories import NodeFactory, SiteFactory, TeamFactory

pytestmark = pytest.mark.django_db

D = Decimal
NOW = datetime(2026, 3, 10, tzinfo=UTC)


def at(hour: int, minute: int = 0, day: int = 2) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def ledger_row(node, hour: datetime, *, gpus: int = 8, active_s: int = 3600, co2e: str | None = "2.0", **figures):
    """One hand-made ledger hour of ``node``: $8 compute, $0.50 energy, 4 kWh, ``co2e`` kg unless told otherwise."""
    values = {"compute_usd": D("8"), "energy_usd": D("0.5"), "energy_kwh": D("4"), **figures}
    return LedgerEntry.objects.create(
        node=node,
        hour=hour,
        provider=node.site.provider,
        provider_kind=node.site.provider.kind,
        site=node.site,
        gpu_model="NVIDIA H100 80GB HBM3",
        lifecycle=node.lifecycle,
        gpu_count=gpus,
        active_s=active_s,
        rate_usd_per_h=D("8"),
        gpu_hours=D(gpus) * active_s / 3600,
        idle_gpu_hours=D(0),
        idle_usd=D(0),
        co2e_kg=None if co2e is None else D(co2e),
        **values,
    )


def job_with(*, team=None, started: datetime | None, ended: datetime | None, gpus: int = 2) -> Job:
    state = JobState.SUCCEEDED if ended else (JobState.RUNNING if started else JobState.PLACED)
    return Job.objects.create(
        name="train",
        team=team or TeamFactory(),
        gpu_count=gpus,
        expected_hours=D(2),
        state=state,
        started_at=started,
        ended_at=ended,
    )


def placement(job: Job, *, created: datetime, node=None, gpus: int = 2, active: bool = True, **kwargs) -> Placement:
    row = Placement.objects.create(
        job=job,
        active=active,
        target_kind=TargetKind.NODE if node else TargetKind.OFFER,
        node=node,
        gpu_count=gpus,
        provider_kind=kwargs.pop("provider_kind", "aws"),
        usd_per_h=D(1),
        compute_usd=D(1),
        egress_usd=D(0),
        total_usd=D(1),
        policy_version="test",
        **kwargs,
    )
    Placement.objects.filter(pk=row.pk).update(created=created)  # created is auto_now_add
    row.refresh_from_db()
    return row


@pytest.fixture
def node():
    return NodeFactory(site=SiteFactory(), lifecycle=NodeLifecycle.ON_DEMAND)


def test_a_node_placement_counts_its_gpu_share_of_the_hours_it_ran(node):
    job = job_with(started=at(10, 30), ended=at(12, 15))
    placement(job, created=at(9, 50), node=node, gpus=2)
    for hour in (9, 10, 11, 12, 13):
        ledger_row(node, at(hour))
    ledger_row(NodeFactory(), at(11))  # another node's hour
    footprint = job_footprint(job=job)
    # share per hour = (seconds of the hour the job ran / 3600) × 2 of 8 GPUs:
    #   09:00 0 (placed, not running) · 10:00 1800 s → 0.125 · 11:00 → 0.25 · 12:00 900 s → 0.0625 · 13:00 0
    #   Σ = 0.4375 → compute 8 × 0.4375 = 3.5, energy $ 0.21875, 1.75 kWh, 0.875 kg, GPU-h 8 × 0.4375 = 3.5
    assert footprint.compute_usd == D("3.500000")
    assert footprint.energy_usd == D("0.218750")
    assert footprint.total_usd == D("3.718750")
    assert footprint.energy_kwh == D("1.750000")
    assert footprint.co2e_kg == D("0.875000")
    assert footprint.gpu_hours == D("3.500000")
    assert (footprint.ledger_hours, footprint.hours_without_carbon) == (3, 0)
    assert footprint.carbon_complete


def test_a_running_job_counts_up_to_now_and_a_partially_active_hour_counts_whole(node):
    job = job_with(started=at(10), ended=None, gpus=8)
    placement(job, created=at(10), node=node, gpus=8)
    ledger_row(node, at(10), active_s=1800, compute_usd=D("4"))  # the node ran half of the hour: all of it is the job's
    ledger_row(node, at(11))
    footprint = job_footprint(job=job, now=at(11, 30))
    assert footprint.compute_usd == D("4") + D("8") * D("0.5")  # 11:00–11:30 of a fully active hour
    assert footprint.co2e_kg == D("2.0") + D("1.0")


def test_hours_without_carbon_are_counted_and_left_out_of_the_kg(node):
    job = job_with(started=at(10), ended=at(13), gpus=8)
    placement(job, created=at(10), node=node, gpus=8)
    ledger_row(node, at(10), co2e="1.5")
    ledger_row(node, at(11), co2e=None)
    ledger_row(node, at(12), co2e="0.5")
    footprint = job_footprint(job=job)
    assert footprint.co2e_kg == D("2.000000") and footprint.energy_kwh == D("12.000000")
    assert (footprint.ledger_hours, footprint.hours_without_carbon) == (3, 1)
    assert not footprint.carbon_complete
    only_unknown = job_with(started=at(11), ended=at(12), gpus=8)
    placement(only_unknown, created=at(11), node=node, gpus=8)
    assert job_footprint(job=only_unknown).co2e_kg is None  # unknown, not zero


def test_an_offer_counts_the_instances_launched_for_the_job_in_full_from_the_launch():
    job = job_with(started=at(11), ended=at(13))
    placement(job, created=at(10), gpus=16, instance_count=2)
    launched = [NodeFactory(labels={"fleetdeck:job": str(job.pk)}), NodeFactory(labels={"fleetdeck-job": str(job.pk)})]
    stranger = NodeFactory(labels={"fleetdeck:job": str(job.pk + 1)})
    for node in [*launched, stranger]:
        for hour in (10, 11, 12, 13):
            ledger_row(node, at(hour))
    footprint = job_footprint(job=job)
    # 2 instances × 3 hours (10:00, 11:00, 12:00; the job ended at 13:00), each whole: 6 × $8, 6 × 2 kg
    assert (footprint.compute_usd, footprint.co2e_kg, footprint.ledger_hours) == (D("48"), D("12"), 6)
    assert [span.node_ids for span in footprint.spans] == [tuple(n.pk for n in launched)]


def test_a_placement_that_never_ran_counts_nothing_and_each_span_ends_at_the_next_placement(node):
    other = NodeFactory(site=node.site)
    job = job_with(started=at(12), ended=at(14))
    placement(job, created=at(9), node=other, gpus=2, active=False)  # re-queued before the job ran
    placement(job, created=at(11), node=node, gpus=8, active=True)
    for hour in range(9, 15):
        ledger_row(node, at(hour))
        ledger_row(other, at(hour))
    spans = job_spans(job=job)
    assert [(s.node_ids, s.start, s.end, s.gpus) for s in spans] == [((node.pk,), at(12), at(14), 8)]
    footprint = job_footprint(job=job)
    assert (footprint.compute_usd, footprint.ledger_hours) == (D("16"), 2)


def test_an_offer_span_ends_when_the_job_is_placed_again():
    job = job_with(started=None, ended=None)
    placement(job, created=at(10), active=False, launch_status="launched")
    instance = NodeFactory(labels={"fleetdeck:job": str(job.pk)})
    placement(job, created=at(12), node=NodeFactory(), gpus=2)  # placed again, not running yet
    for hour in (10, 11, 12, 13):
        ledger_row(instance, at(hour))
    footprint = job_footprint(job=job, now=at(14))
    assert (footprint.compute_usd, footprint.ledger_hours) == (D("16"), 2)  # 10:00 and 11:00 only


def test_a_job_that_never_ran_has_an_empty_footprint(node):
    job = job_with(started=None, ended=None)
    placement(job, created=at(10), node=node)
    ledger_row(node, at(10))
    footprint = job_footprint(job=job)
    assert (footprint.ledger_hours, footprint.compute_usd, footprint.co2e_kg, footprint.spans) == (0, 0, None, [])


# --- the job page and API ----------------------------------------------------------------------------------
def test_the_job_page_and_api_show_the_footprint_to_the_jobs_team_only(node, api_client, client, make_user):
    team = TeamFactory()
    job = job_with(team=team, started=at(10, 30), ended=at(12, 15))
    placement(job, created=at(9, 50), node=node, gpus=2)
    for hour in (10, 11, 12):
        ledger_row(node, at(hour), co2e=None if hour == 12 else "2.0")
    response = api_client(Role.VIEWER).get(reverse("api:job-footprint", kwargs={"pk": job.pk}))
    assert response.status_code == 200, response.data
    data = response.json()
    # 10:00 0.125 + 11:00 0.25 of 2 kg = 0.75 kg; the 12:00 hour (0.0625 of it) has no carbon figure
    assert data["co2e_kg"] == "0.750000" and data["hours_without_carbon"] == 1 and data["ledger_hours"] == 3
    assert data["compute_usd"] == "3.500000" and data["total_usd"] == "3.718750"
    assert data["spans"] == [
        {
            "placement": job.placements.get().pk,
            "start": "2026-03-02T10:30:00Z",
            "end": "2026-03-02T12:15:00Z",
            "nodes": [node.pk],
            "gpus": 2,
        }
    ]
    client.force_login(make_user(Role.VIEWER))
    page = client.get(reverse("scheduler-job", kwargs={"pk": job.pk})).content.decode()
    # kgCO2e to 0.1 kg half up on every page (core.figures.co2e_text): 0.75 → 0.8
    assert 'data-testid="footprint-co2e"><strong>0.8 kgCO2e</strong>' in page
    assert "$3.72 (compute $3.50, energy $0.22)" in page
    assert "1 of the counted hours had no grid intensity for their site: the carbon figure leaves it out." in page
    outsider = make_user(Role.VIEWER, username="outsider")
    TeamFactory().members.add(outsider)
    client.force_login(outsider)
    assert client.get(reverse("scheduler-job", kwargs={"pk": job.pk})).status_code == 404
    limited = api_client(Role.VIEWER)
    TeamFactory().members.add(limited.user)
    assert limited.get(reverse("api:job-footprint", kwargs={"pk": job.pk})).status_code == 404


def test_the_job_page_says_when_nothing_is_counted_yet(client, make_user):
    job = job_with(started=None, ended=None)
    client.force_login(make_user(Role.VIEWER))
    page = client.get(reverse("scheduler-job", kwargs={"pk": job.pk})).content.decode()
    assert "No ledger hours yet" in page


def test_the_footprint_takes_three_queries(node, django_assert_num_queries):
    job = job_with(started=at(10), ended=at(12), gpus=8)
    placement(job, created=at(9), gpus=8, active=False)
    placement(job, created=at(9, 30), node=node, gpus=8)
    with django_assert_num_queries(3):  # placements, the nodes launched for it, the ledger sum
        job_footprint(job=job, now=at(12) + timedelta(hours=1))
