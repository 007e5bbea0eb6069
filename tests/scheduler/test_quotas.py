"""Quotas and fair share through ``jobs_place``: caps, borrowing (preemptible), fair-share order, reclaim.

The fleet: the hand-checked scenario's on-prem DGX dgx-1 plus a second, dgx-2: 16 H100s in dc-1, all at the same
$/GPU-h. Jobs here run on-prem only (``allowed_providers=["onprem"]``) and read no dataset, so the cloud offers of
the scenario never compete and every figure below is a GPU count worked out by hand.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from fleet.models import Team
from scheduler.choices import JobState, TargetKind
from scheduler.jobs import job_transition
from scheduler.models import Job, Placement, TeamQuota
from scheduler.placements import jobs_place
from scheduler.quotas import Usage
from scheduler.selectors import quota_rows
from tests.scheduler.conftest import onprem_node

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet(scenario):
    """The scenario with a second 8-GPU node: 16 free H100s."""
    onprem_node(scenario.site, name="dgx-2")
    return scenario


def team(name: str) -> Team:
    return Team.objects.create(name=name, slug=f"q-{name.lower()}")


def onprem_job(scenario, team: Team, name: str, gpus: int, **kwargs) -> Job:
    """A 1-hour on-prem H100 job of ``team`` that reads no data."""
    fields = {"team": team, "project": None, "gpu_count": gpus, "allowed_providers": ["onprem"], "datasets": []}
    fields.update(kwargs)
    return scenario.job(name=name, expected_hours=Decimal("1"), **fields)


def held(team: Team) -> dict[str, int]:
    """GPUs ``team`` holds on nodes now: in all, and of those on preemptible placements."""
    active = Placement.objects.filter(
        active=True, job__team=team, target_kind=TargetKind.NODE, job__state__in=("placed", "running")
    )
    return {
        "gpus": sum(p.gpu_count for p in active),
        "preemptible": sum(p.gpu_count for p in active if p.preemptible),
    }


def test_burst_borrows_then_the_owner_arrives_and_borrowed_gpus_are_reclaimed(fleet):
    """The done-when scenario. research: guarantee 8 + borrow 8; product: guarantee 8 + borrow 4; weights 1.

    Burst: research submits four 4-GPU jobs (16 GPUs) into an empty 16-GPU fleet: two within its guarantee, two
    borrowed (preemptible) → research 16 (8 borrowed), product 0. Then product submits two 4-GPU jobs: product is
    below its guarantee and nothing is free, so research's two borrowed placements (newest first, 4 GPUs each:
    exactly enough) are re-queued and product's jobs take those GPUs → research 8 (0 borrowed), product 8. The
    two re-queued jobs wait: research is within its cap (8 of 16) but no GPU is idle.
    """
    research, product = team("research"), team("product")
    TeamQuota.objects.create(team=research, gpu_model="H100", guaranteed_gpus=8, borrow_limit_gpus=8)
    TeamQuota.objects.create(team=product, gpu_model="H100", guaranteed_gpus=8, borrow_limit_gpus=4)
    burst = [onprem_job(fleet, research, f"burst-{i}", 4) for i in range(4)]

    report = jobs_place()

    assert report.placed == [j.pk for j in burst] and report.unplaced == {}
    assert held(research) == {"gpus": 16, "preemptible": 8} and held(product) == {"gpus": 0, "preemptible": 0}
    flags = dict(Placement.objects.filter(active=True).values_list("job__name", "preemptible"))
    # Jobs within the guarantee are decided first (submission order), the borrowers after.
    assert flags == {"burst-0": False, "burst-1": False, "burst-2": True, "burst-3": True}

    mine = [onprem_job(fleet, product, f"prod-{i}", 4) for i in range(2)]
    report = jobs_place()

    assert report.reclaimed == [burst[2].pk, burst[3].pk]
    assert sorted(report.placed) == [j.pk for j in mine]
    assert held(research) == {"gpus": 8, "preemptible": 0} and held(product) == {"gpus": 8, "preemptible": 0}
    for job in burst[2:]:
        job.refresh_from_db()
        assert job.state == JobState.PENDING
        assert job.pending_reason == (
            "Re-queued: its borrowed H100 GPUs were reclaimed for product, which is below its guarantee. "
            "Waiting for quota: no idle H100 GPUs are left to borrow; "  # product holds only its guarantee
            "research uses 8 of its 16 GPUs of H100 (guarantee 8 + borrow 8)"
        )
    # The reclaimed placements went inactive (history kept), their jobs back to the queue.
    assert not Placement.objects.filter(job__in=burst[2:], active=True).exists()
    assert Placement.objects.filter(job__in=burst[2:], active=False, preemptible=True).count() == 2
    rows = {(r.quota.team.name, r.used_gpus, r.borrowed_gpus, r.share) for r in quota_rows()}
    assert rows == {("research", 8, 0, Decimal("0.5")), ("product", 8, 0, Decimal("0.6667"))}

    # When product's jobs end, the next run lets research borrow again.
    for job in mine:
        job_transition(job=job, state="running")
        job_transition(job=job, state="succeeded")
    report = jobs_place()
    assert sorted(report.placed) == [burst[2].pk, burst[3].pk] and report.reclaimed == []
    assert held(research) == {"gpus": 16, "preemptible": 8}


def test_running_borrowed_jobs_are_not_reclaimed(fleet):
    """Only placed (not started) jobs are re-queued: a running job's process is not the scheduler's to stop."""
    research, product = team("research"), team("product")
    TeamQuota.objects.create(team=research, gpu_model="H100", guaranteed_gpus=8, borrow_limit_gpus=8)
    TeamQuota.objects.create(team=product, gpu_model="H100", guaranteed_gpus=8)
    burst = [onprem_job(fleet, research, f"burst-{i}", 8) for i in range(2)]
    jobs_place()
    for job in burst:
        job_transition(job=job, state="running")
    waiting = onprem_job(fleet, product, "prod", 8)

    report = jobs_place()

    assert report.reclaimed == [] and waiting.pk in report.unplaced
    assert held(research) == {"gpus": 16, "preemptible": 8}


def test_team_never_goes_over_guarantee_plus_borrow(fleet):
    """Guarantee 4 + borrow 2 = 6: the first 4-GPU job fits; the second would make 8 > 6 and waits, though 12
    GPUs are free; a 2-GPU job still fits (4 + 2 = 6, borrowed, so preemptible)."""
    research = team("research")
    TeamQuota.objects.create(team=research, gpu_model="H100", guaranteed_gpus=4, borrow_limit_gpus=2)
    first = onprem_job(fleet, research, "first", 4)
    second = onprem_job(fleet, research, "second", 4)
    small = onprem_job(fleet, research, "small", 2)

    report = jobs_place()

    assert report.placed == [first.pk, small.pk]
    assert report.unplaced == {
        second.pk: "waiting for quota: research uses 6 of its 6 GPUs of H100 (guarantee 4 + borrow 2)"
    }
    second.refresh_from_db()
    assert second.state == JobState.PENDING and second.pending_reason.startswith("waiting for quota: research")
    assert held(research) == {"gpus": 6, "preemptible": 2}


def test_all_models_quota_caps_every_model_together(fleet):
    """A quota with no GPU model counts all GPUs: guarantee 2 + borrow 0 of all models allows one 2-GPU job."""
    research = team("research")
    TeamQuota.objects.create(team=research, gpu_model="", guaranteed_gpus=2)
    ok = onprem_job(fleet, research, "ok", 2)
    over = onprem_job(fleet, research, "over", 1)

    report = jobs_place()

    assert report.placed == [ok.pk]
    assert report.unplaced[over.pk] == (
        "waiting for quota: research uses 2 of its 2 GPUs of all GPU models (guarantee 2 + borrow 0)"
    )


def test_quotas_govern_existing_nodes_only_a_capped_job_may_launch_an_offer(fleet):
    """Cloud offers are not capped: with clouds allowed, the job over its cap goes to the cheapest offer
    (AWS us-east-1 p5.48xlarge, 8 H100s) instead of waiting; its placement is not preemptible."""
    research = team("research")
    TeamQuota.objects.create(team=research, gpu_model="H100", guaranteed_gpus=8)
    onprem_job(fleet, research, "fits", 8)
    cloud = onprem_job(fleet, research, "over", 8, allowed_providers=[])

    report = jobs_place()

    assert cloud.pk in report.placed
    placement = Placement.objects.get(job=cloud, active=True)
    assert (placement.target_kind, placement.instance_type, placement.region) == (
        TargetKind.OFFER,
        "p5.48xlarge",
        "us-east-1",
    )
    assert placement.preemptible is False
    assert held(research) == {"gpus": 8, "preemptible": 0}


def test_borrowers_share_idle_gpus_by_weight(fleet):
    """Guarantees 0, borrow 16 each; alpha weight 3, beta weight 1; each submits eight 2-GPU jobs (16 GPUs).

    Admission, lowest usage ÷ weight first (ties: the older team): alpha 2 (0.67), beta 2 (2), alpha 4 (1.33),
    alpha 6 (2), alpha 8 (2.67, tie → alpha), beta 4 (4), alpha 10 (3.33), alpha 12 (4): the 16 GPUs are gone,
    alpha 12 : beta 4 = 3 : 1, the weights. All of it is borrowed (guarantee 0), so preemptible.
    """
    alpha, beta = team("alpha"), team("beta")
    TeamQuota.objects.create(team=alpha, gpu_model="H100", borrow_limit_gpus=16, weight=Decimal("3"))
    TeamQuota.objects.create(team=beta, gpu_model="H100", borrow_limit_gpus=16, weight=Decimal("1"))
    for i in range(8):
        onprem_job(fleet, alpha, f"a-{i}", 2)
        onprem_job(fleet, beta, f"b-{i}", 2)

    report = jobs_place()

    assert len(report.placed) == 8 and len(report.unplaced) == 8
    assert held(alpha) == {"gpus": 12, "preemptible": 12} and held(beta) == {"gpus": 4, "preemptible": 4}
    waiting = Job.objects.get(name="b-7")
    assert waiting.pending_reason == (
        "waiting for quota: the idle H100 GPUs went to teams with a lower fair share (usage ÷ weight) first; "
        "beta uses 4 of its 16 GPUs of H100 (guarantee 0 + borrow 16)"
    )


def test_teams_without_a_quota_are_not_limited(fleet):
    """A team with no quota row places as before quotas, next to a capped one."""
    research, free_team = team("research"), team("free")
    TeamQuota.objects.create(team=research, gpu_model="H100", guaranteed_gpus=0)
    capped = onprem_job(fleet, research, "capped", 1)
    jobs = [onprem_job(fleet, free_team, f"free-{i}", 8) for i in range(2)]

    report = jobs_place()

    assert report.placed == [j.pk for j in jobs]
    assert report.unplaced[capped.pk].startswith("waiting for quota: research uses 0 of its 0 GPUs of H100")
    assert held(free_team) == {"gpus": 16, "preemptible": 0}


def test_a_quota_on_another_model_does_not_govern_h100_jobs(fleet):
    research = team("research")
    TeamQuota.objects.create(team=research, gpu_model="A100-80GB", guaranteed_gpus=0)
    job = onprem_job(fleet, research, "h100", 8)

    assert jobs_place().placed == [job.pk]


def test_gpus_on_a_node_of_no_known_model_count_once_in_the_all_models_figure():
    # A node not polled yet has no GPU model (""): its GPUs count in the all-models usage once, not twice.
    usage = Usage()
    usage.add(7, "", 2)
    usage.add(7, "H100", 4)
    assert dict(usage.used) == {(7, ""): 6, (7, "H100"): 4}
