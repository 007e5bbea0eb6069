"""The scheduler's Django path: database → optimiser → placement rows, planned egress, lifecycle, re-queue."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.models import EgressRecord
from fleet.choices import NodeState
from fleet.telemetry.storage import Sample, hour_rollup, samples_ingest
from scheduler.choices import JobState, LaunchStatus, TargetKind
from scheduler.inputs import fleet_inputs
from scheduler.jobs import TransitionError, job_transition
from scheduler.models import Dataset, Job, Placement
from scheduler.placements import job_what_if, jobs_place, jobs_requeue_unreachable
from tests.scheduler.conftest import TB2, onprem_node

pytestmark = pytest.mark.django_db


def test_hand_checked_scenario_places_on_prem_with_exact_breakdown(scenario):
    job = scenario.job()
    report = jobs_place()
    assert report.placed == [job.pk] and report.unplaced == {}

    job.refresh_from_db()
    assert job.state == JobState.PLACED and job.pending_reason == ""
    placement = Placement.objects.get(job=job, active=True)
    assert placement.target_kind == TargetKind.NODE
    assert placement.node == scenario.node
    assert placement.region == "dc-1"  # the site name, as allowed_regions matches on-prem nodes
    assert placement.gpu_count == 8
    assert placement.usd_per_h == Decimal("9.78")  # 8 × 1.2225
    assert placement.compute_usd == Decimal("97.80")
    assert placement.egress_usd == Decimal("180.00")
    assert placement.total_usd == Decimal("277.80")
    assert placement.transfer_s == 1600
    assert placement.policy_version == "cost-gravity-1"
    assert placement.breakdown == [
        {
            "dataset_id": scenario.dataset.pk,
            "dataset": "corpus-2tb",
            "source": "aws:us-east-1",
            "destination": "onprem:dc-1",
            "bytes": TB2,
            "moved": True,
            "usd": "180.000000",
            "seconds": 1600,
        }
    ]
    ranked = [
        (a["location"], a["instance_type"], a["spot"], a["compute_usd"], a["egress_usd"], a["total_usd"])
        for a in placement.alternatives
    ]
    assert ranked == [
        ("onprem:dc-1", "", False, "97.800000", "180.000000", "277.800000"),
        ("aws:us-east-1", "p5.48xlarge", False, "550.400000", "0.000000", "550.400000"),
        ("aws:us-west-2", "p5.48xlarge", False, "550.400000", "40.000000", "590.400000"),
        ("gcp:us-central1", "a3-highgpu-8g", False, "882.500000", "180.000000", "1062.500000"),
    ]
    assert placement.alternatives[0]["energy_basis"] == "estimated"
    assert "dc-1" in placement.alternatives[0]["label"]

    record = EgressRecord.objects.get(placement=placement)
    assert (record.source, record.destination, record.bytes, record.usd) == (
        "aws:us-east-1",
        "onprem:dc-1",
        TB2,
        Decimal("180.000000"),
    )
    assert record.planned and record.cause == "placement" and record.location_class == "other-cloud"
    assert record.source_provider_kind == "aws"
    assert (record.team, record.project, record.dataset) == (scenario.team, scenario.project, scenario.dataset)


def test_measured_power_replaces_the_estimate(scenario):
    """300 W measured instead of 490 W estimated: energy 300 × 0.25 / 1000 = 0.075 $/GPU-h → $94.00 compute."""
    hour = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    samples = [
        Sample(
            gpu_id=gpu.pk,
            ts=hour + timedelta(minutes=m),
            util_pct=90.0,
            mem_used_mib=1000.0,
            power_w=300.0,
            temp_c=60.0,
            sm_clock_mhz=1500.0,
        )
        for gpu in scenario.node.gpus.all()
        for m in range(0, 60, 5)
    ]
    samples_ingest(samples=samples)
    hour_rollup(start=hour, end=hour + timedelta(hours=1))
    job = scenario.job()
    jobs_place()
    placement = Placement.objects.get(job=job)
    assert placement.compute_usd == Decimal("94.00")
    assert placement.alternatives[0]["energy_basis"] == "measured"


def test_spot_offer_only_when_allowed(scenario):
    job = scenario.job(allowed_providers=["aws"], spot_allowed=True)
    jobs_place()
    placement = Placement.objects.get(job=job)
    assert (placement.target_kind, placement.region, placement.spot) == (TargetKind.OFFER, "us-east-1", True)
    assert placement.compute_usd == Decimal("300.00")
    assert placement.launch_status == LaunchStatus.DRY_RUN
    request = placement.launch_request
    assert (request["service"], request["method"], request["region"]) == ("ec2", "run_instances", "us-east-1")
    assert request["parameters"]["InstanceMarketOptions"]["MarketType"] == "spot"
    tags = {t["Key"]: t["Value"] for t in request["parameters"]["TagSpecifications"][0]["Tags"]}
    assert tags["fleetdeck:job"] == str(job.pk) and tags["team"] == "research" and tags["project"] == "llm"


def test_capacity_competition_gives_the_node_to_one_job(scenario):
    first = scenario.job(name="a")
    second = scenario.job(name="b")
    report = jobs_place()
    assert sorted(report.placed) == sorted([first.pk, second.pk])
    on_node = Placement.objects.filter(active=True, node=scenario.node)
    assert on_node.count() == 1
    other = Placement.objects.exclude(node=scenario.node).get(active=True)
    assert (other.target_kind, other.region, other.instance_type) == (TargetKind.OFFER, "us-east-1", "p5.48xlarge")
    assert other.total_usd == Decimal("550.40")


def test_higher_priority_wins_scarce_gpus_when_the_rest_cannot_go_elsewhere(scenario):
    low = scenario.job(name="low", priority=0, allowed_providers=["onprem"])
    high = scenario.job(name="high", priority=10, allowed_providers=["onprem"])
    report = jobs_place()
    assert report.placed == [high.pk]
    low.refresh_from_db()
    assert low.state == JobState.PENDING and low.pending_reason


def test_gpus_free_up_when_a_job_ends(scenario):
    first = scenario.job(name="first", allowed_providers=["onprem"])
    jobs_place()
    second = scenario.job(name="second", allowed_providers=["onprem"])
    assert jobs_place().unplaced.keys() == {second.pk}
    job_transition(job=first, state=JobState.RUNNING)
    assert jobs_place().placed == []  # still busy while it runs
    job_transition(job=first, state=JobState.SUCCEEDED)
    first.refresh_from_db()
    assert first.ended_at is not None and first.started_at is not None
    assert Placement.objects.get(job=first).active  # kept as history
    assert jobs_place().placed == [second.pk]
    assert Placement.objects.get(job=second).node == scenario.node


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (JobState.PENDING, JobState.RUNNING),
        (JobState.PENDING, JobState.SUCCEEDED),
        (JobState.PLACED, JobState.SUCCEEDED),
        (JobState.SUCCEEDED, JobState.CANCELLED),
        (JobState.FAILED, JobState.RUNNING),
        (JobState.CANCELLED, JobState.CANCELLED),
    ],
)
def test_illegal_transitions_are_refused(scenario, start, target):
    job = scenario.job(state=start)
    with pytest.raises(TransitionError, match=f"A {start} job cannot become {target}"):
        job_transition(job=job, state=target)
    job.refresh_from_db()
    assert job.state == start


def test_cancelling_a_placed_job_drops_its_planned_egress(scenario):
    job = scenario.job()
    jobs_place()
    assert EgressRecord.objects.filter(placement__job=job).count() == 1
    job_transition(job=job, state=JobState.CANCELLED)
    assert not EgressRecord.objects.filter(placement__job=job).exists()


def node_unreachable(node, *, last_seen_s_ago: float) -> None:
    """Mark ``node`` unreachable, as the poller does, with its last successful poll ``last_seen_s_ago`` ago."""
    type(node).objects.filter(pk=node.pk).update(
        state=NodeState.UNREACHABLE, last_seen=timezone.now() - timedelta(seconds=last_seen_s_ago)
    )


# Unreachable for longer than the grace period (the default: SCHEDULER_REQUEUE_GRACE_S = 300).
LONG_OUTAGE_S = 301


def test_unreachable_node_requeues_its_placed_jobs(scenario):
    job = scenario.job()
    running = scenario.job(name="running", gpu_count=0 + 8)
    jobs_place()
    assert Placement.objects.get(job=job).node == scenario.node
    # The other job went to the cloud; make it look like it runs on the node too, to show running jobs stay.
    Job.objects.filter(pk=running.pk).update(state=JobState.RUNNING)
    Placement.objects.filter(job=running).update(node=scenario.node)
    node_unreachable(scenario.node, last_seen_s_ago=LONG_OUTAGE_S)

    assert jobs_requeue_unreachable() == [job.pk]
    job.refresh_from_db()
    assert job.state == JobState.PENDING and "unreachable" in job.pending_reason
    assert not Placement.objects.get(job=job).active
    assert not EgressRecord.objects.filter(placement__job=job).exists()
    running.refresh_from_db()
    assert running.state == JobState.RUNNING
    assert jobs_requeue_unreachable() == []  # nothing left to do: idempotent

    jobs_place()
    replaced = Placement.objects.get(job=job, active=True)
    assert replaced.target_kind == TargetKind.OFFER and replaced.region == "us-east-1"


def test_a_monitoring_blip_shorter_than_the_grace_keeps_the_placement(scenario):
    """Nodes unreachable for ~75 s (a monitoring blip): their placed jobs stay placed, and stay when it ends."""
    job = scenario.job()
    jobs_place()
    placement = Placement.objects.get(job=job, active=True)
    node_unreachable(scenario.node, last_seen_s_ago=75)

    assert jobs_requeue_unreachable() == []
    job.refresh_from_db()
    assert job.state == JobState.PLACED and Placement.objects.get(job=job, active=True) == placement
    assert EgressRecord.objects.filter(placement=placement, planned=True).exists()
    type(scenario.node).objects.filter(pk=scenario.node.pk).update(state=NodeState.RUNNING, last_seen=timezone.now())
    jobs_place()
    assert list(Placement.objects.filter(job=job).values_list("pk", flat=True)) == [placement.pk]


def test_requeue_moves_a_placement_once_the_node_is_unreachable_past_the_grace(scenario, settings):
    settings.SCHEDULER_REQUEUE_GRACE_S = 120
    job = scenario.job()
    jobs_place()
    node_unreachable(scenario.node, last_seen_s_ago=110)
    assert jobs_requeue_unreachable() == []
    # The same outage 15 s later: the last successful poll is now more than the grace ago.
    assert jobs_requeue_unreachable(now=timezone.now() + timedelta(seconds=15)) == [job.pk]
    job.refresh_from_db()
    assert job.state == JobState.PENDING and not Placement.objects.filter(job=job, active=True).exists()


def test_an_unreachable_node_never_seen_is_past_the_grace(scenario):
    job = scenario.job(allowed_providers=["onprem"])
    jobs_place()
    type(scenario.node).objects.filter(pk=scenario.node.pk).update(state=NodeState.UNREACHABLE, last_seen=None)
    assert jobs_requeue_unreachable() == [job.pk]


@pytest.mark.parametrize("state", [NodeState.STOPPED, NodeState.TERMINATED])
def test_a_stopped_or_terminated_node_requeues_at_once(scenario, state):
    """The grace is for telemetry blips only: the inventory says a stopped or terminated node is gone."""
    job = scenario.job(allowed_providers=["onprem"])
    jobs_place()
    type(scenario.node).objects.filter(pk=scenario.node.pk).update(state=state, last_seen=timezone.now())
    assert jobs_requeue_unreachable() == [job.pk]


def test_stale_nodes_and_lost_gpus_are_not_offered(scenario):
    type(scenario.node).objects.filter(pk=scenario.node.pk).update(last_seen=timezone.now() - timedelta(hours=1))
    fresh = onprem_node(scenario.site, name="dgx-2")
    fresh.gpus.filter(index__in=[0, 1]).update(lost=True)
    job = scenario.job(gpu_count=6, allowed_providers=["onprem"])
    too_big = scenario.job(name="too-big", gpu_count=7, allowed_providers=["onprem"])
    report = jobs_place()
    assert report.placed == [job.pk]
    assert Placement.objects.get(job=job).node == fresh
    assert too_big.pk in report.unplaced


def test_unplaceable_job_gets_a_reason(scenario):
    job = scenario.job(gpu_model="B200")
    report = jobs_place()
    job.refresh_from_db()
    assert report.unplaced[job.pk] == job.pending_reason
    assert "B200" in job.pending_reason


def test_missing_egress_rate_rules_out_only_the_candidates_that_need_it(scenario):
    from billing.models import EgressRate

    # aws → on-prem and aws → gcp cannot be priced; aws us-east-1 (no move) and us-west-2 still can.
    EgressRate.objects.filter(provider_kind="aws", location_class="other-cloud").delete()
    job = scenario.job()
    stuck = scenario.job(name="stuck", allowed_providers=["onprem", "gcp"])
    elsewhere = scenario.job(name="no-data", datasets=[], allowed_providers=["onprem"])
    report = jobs_place()
    assert sorted(report.placed) == sorted([job.pk, elsewhere.pk])  # the batch is not aborted
    placement = Placement.objects.get(job=job)
    assert (placement.target_kind, placement.region) == (TargetKind.OFFER, "us-east-1")
    assert all(a["location"].startswith("aws:") for a in placement.alternatives)
    assert Placement.objects.get(job=elsewhere).node == scenario.node
    stuck.refresh_from_db()
    assert stuck.state == JobState.PENDING
    assert "cannot price moving its data" in stuck.pending_reason and "egress rate" in stuck.pending_reason
    assert report.unplaced == {stuck.pk: stuck.pending_reason}


def test_what_if_prices_without_saving(scenario):
    data = {
        "name": "x",
        "gpu_count": 8,
        "gpu_model": "H100",
        "expected_hours": Decimal(10),
        "datasets": [scenario.dataset],
        "spot_allowed": False,
    }
    candidates, _ = job_what_if(data=data)
    assert [c.total_usd for c in candidates][:2] == [Decimal("277.80"), Decimal("550.40")]
    assert not Placement.objects.exists() and not Job.objects.exists()


def test_jobs_place_query_count_is_constant(scenario):
    def place_with(n_jobs: int, n_nodes: int) -> int:
        Placement.objects.all().delete()
        Job.objects.all().delete()
        for i in range(n_nodes):
            onprem_node(scenario.site, name=f"extra-{n_nodes}-{i}", gpus=2)
        for i in range(n_jobs):
            scenario.job(name=f"j{i}", gpu_count=1 + i % 2)
        with CaptureQueriesContext(connection) as queries:
            report = jobs_place()
        assert len(report.placed) == n_jobs
        return len(queries)

    few = place_with(2, 1)
    many = place_with(12, 6)
    assert many == few, (few, many)


def test_jobs_place_query_count_is_constant_on_offers(scenario):
    """Offer placements: no per-placement provider lookup, no lazy team/project for the launch tags."""

    def place_on_offers(n_jobs: int) -> int:
        Placement.objects.all().delete()
        Job.objects.all().delete()
        for i in range(n_jobs):
            scenario.job(name=f"o{i}", allowed_providers=["aws", "gcp"])
        with CaptureQueriesContext(connection) as queries:
            report = jobs_place()
        assert len(report.placed) == report.launches == n_jobs
        return len(queries)

    one, six = place_on_offers(1), place_on_offers(6)
    assert six == one, (one, six)


def test_offers_only_in_the_regions_the_account_launches_in(scenario):
    from fleet.models import Provider

    def offered(kind: str) -> set[str]:
        return {o.region for o in fleet_inputs(now=timezone.now()).offers if o.provider_kind == kind}

    assert offered("aws") == {"us-east-1", "us-west-2"}
    assert offered("gcp") == {"us-central1"}  # GCP without regions: inventory scans every zone
    Provider.objects.filter(name="aws-main").update(regions=["us-east-1"])
    Provider.objects.filter(name="gcp-main").update(regions=["europe-west4"])
    assert offered("aws") == {"us-east-1"} and offered("gcp") == set()
    job = scenario.job(allowed_regions=["us-west-2"])
    assert job.pk in jobs_place().unplaced


def test_node_gpu_memory_is_compared_on_the_catalogue_scale(scenario):
    """NVML reports an H100 80GB as 81559 MiB; the catalogue (and every offer) says 81920."""
    scenario.node.gpus.update(memory_mib=81559)
    (node,) = fleet_inputs(now=timezone.now()).nodes
    assert node.gpu_memory_mib == 81920
    job = scenario.job(gpu_model="", min_gpu_memory_mib=81920, allowed_providers=["onprem"], datasets=[])
    assert jobs_place().placed == [job.pk]
    assert Placement.objects.get(job=job).node == scenario.node


def test_a_placement_run_is_skipped_while_another_holds_the_lock(scenario):
    from django.db import transaction

    from scheduler.placements import PLACE_LOCK_KEY

    job = scenario.job()
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PLACE_LOCK_KEY])
            with transaction.atomic():
                report = jobs_place()
            cursor.execute("ROLLBACK")
    finally:
        other.close()
    assert report.skipped == "another placement run is in progress"
    assert report.as_dict()["skipped"] and report.placed == []
    job.refresh_from_db()
    assert job.state == JobState.PENDING
    assert jobs_place().placed == [job.pk] and not jobs_place().skipped


@pytest.mark.django_db(transaction=True)
def test_requeue_leaves_a_job_that_started_meanwhile_running(scenario):
    """A job turning running while the re-queue runs: the re-queue waits for its row and then leaves it."""
    from django.db import transaction

    job = scenario.job(allowed_providers=["onprem"])
    jobs_place()
    node_unreachable(scenario.node, last_seen_s_ago=LONG_OUTAGE_S)
    result, errors = [], []

    def requeue():
        try:
            result.extend(jobs_requeue_unreachable())
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    with transaction.atomic():
        job_transition(job=job, state=JobState.RUNNING)  # holds the job's row lock until commit
        thread = threading.Thread(target=requeue)
        thread.start()
        watcher = connections.create_connection("default")
        try:
            with watcher.cursor() as cursor:
                for _ in range(100):  # until the re-queue waits on a lock
                    cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
                    if cursor.fetchone()[0]:
                        break
                    threading.Event().wait(0.05)
        finally:
            watcher.close()
    thread.join(timeout=30)
    assert not errors, errors
    job.refresh_from_db()
    assert job.state == JobState.RUNNING and result == []
    assert Placement.objects.get(job=job).active


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_do_not_double_book(scenario):
    first = scenario.job(name="first", allowed_providers=["onprem"])
    second = scenario.job(name="second", allowed_providers=["onprem"])
    barrier = threading.Barrier(2)
    reports, errors = {}, []

    def run(job_id):
        try:
            barrier.wait()
            reports[job_id] = jobs_place(job_ids=[job_id])
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(job.pk,)) for job in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert sum(len(r.placed) for r in reports.values()) == 1
    assert Placement.objects.filter(active=True, node=scenario.node).count() == 1
    assert Job.objects.filter(state=JobState.PENDING).count() == 1


def test_demo_seed_is_idempotent():
    from devtools.demo.fleet import demo_fleet_seed
    from devtools.demo.scheduler import DEMO_DATASETS, DEMO_JOBS, demo_scheduler_seed

    demo_fleet_seed(nodes=20, seed=3)
    assert demo_scheduler_seed() == {"datasets": len(DEMO_DATASETS), "jobs": len(DEMO_JOBS)}
    assert demo_scheduler_seed() == {"datasets": len(DEMO_DATASETS), "jobs": 0}
    assert Dataset.objects.get(name="pathology-scans").site.name == "dc-ams1"
    report = jobs_place()
    assert len(report.placed) + len(report.unplaced) == len(DEMO_JOBS)


def test_demo_quotas_fit_the_demo_fleet_and_leave_its_placements_as_they_were():
    from devtools.demo.billing import demo_prices_seed
    from devtools.demo.fleet import demo_fleet_seed
    from devtools.demo.scheduler import DEMO_QUOTAS, demo_quotas_seed, demo_scheduler_seed

    demo_fleet_seed(nodes=300, seed=7)  # make demo's size and seed
    demo_prices_seed()
    demo_scheduler_seed()
    without = {p.job.name: (p.node_id, p.instance_type, p.gpu_count) for p in placed(jobs_place())}
    assert {"pretrain-7b", "scan-segmentation", "video-dedup"} <= set(without)  # the quota-governed on-prem jobs
    Placement.objects.all().delete()
    Job.objects.update(state=JobState.PENDING)
    assert demo_quotas_seed() == len(DEMO_QUOTAS)
    assert demo_quotas_seed() == 0
    report = jobs_place()
    assert {p.job.name: (p.node_id, p.instance_type, p.gpu_count) for p in placed(report)} == without
    assert not Placement.objects.filter(preemptible=True).exists()  # every demo job fits its team's guarantee


def placed(report):
    return Placement.objects.filter(job_id__in=report.placed, active=True).select_related("job")


def test_tasks_call_the_services(scenario):
    from scheduler import tasks

    job = scenario.job()
    assert tasks.jobs_place.apply().get()["placed"] == [job.pk]
    node_unreachable(scenario.node, last_seen_s_ago=LONG_OUTAGE_S)
    assert tasks.jobs_requeue_unreachable.apply().get() == [job.pk]
    assert tasks.jobs_place.name == "scheduler.tasks.jobs_place"


def test_beat_entries_run_on_the_scheduler_queue():
    from django_celery_beat.models import PeriodicTask

    from scheduler.schedules import scheduler_schedules_sync

    scheduler_schedules_sync()
    entries = {t.task: t for t in PeriodicTask.objects.filter(task__startswith="scheduler.tasks.")}
    assert set(entries) == {"scheduler.tasks.jobs_place", "scheduler.tasks.jobs_requeue_unreachable"}
    assert {t.queue for t in entries.values()} == {"scheduler"}
    assert entries["scheduler.tasks.jobs_place"].interval.every == 60


def test_a_transition_reads_the_state_it_leaves_under_the_lock(scenario):
    """The caller's copy says pending; a placement run placed the job meanwhile: cancelling it frees GPUs."""
    job = scenario.job()
    stale_copy = Job.objects.get(pk=job.pk)
    jobs_place()
    moved = job_transition(job=stale_copy, state=JobState.CANCELLED)
    assert (moved.previous, moved.job.state, moved.frees_gpus) == (JobState.PLACED, JobState.CANCELLED, True)
