"""Launching a cloud offer: the dry run records the exact call; live mode calls EC2 (moto) and the next inventory
sync files the instance under the job's team and project."""

from __future__ import annotations

import uuid

import pytest

from billing.models import EgressRecord
from config.celery import app as celery_app
from fleet.inventory.sync import inventory_sync
from fleet.models import Node, Provider
from scheduler import tasks
from scheduler.choices import JobState, LaunchStatus, TargetKind
from scheduler.jobs import job_transition
from scheduler.launch import launch_request_build, placement_launch
from scheduler.models import Placement
from scheduler.placements import jobs_place
from tests.fleet.inventory.conftest import IMAGE_ID

pytestmark = pytest.mark.django_db


@pytest.fixture
def eager():
    """Run tasks queued on commit in-process, as a worker would."""
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = before


def test_dry_run_is_the_default_and_calls_nothing(scenario, settings):
    assert not hasattr(settings, "SCHEDULER_LAUNCH") or settings.SCHEDULER_LAUNCH == "dry-run"
    job = scenario.job(allowed_providers=["gcp"], spot_allowed=True)
    jobs_place()
    placement = Placement.objects.get(job=job)
    assert placement.target_kind == TargetKind.OFFER
    assert placement.launch_status == LaunchStatus.DRY_RUN
    request = placement.launch_request
    assert (request["service"], request["method"], request["zone"]) == ("compute", "instances.insert", "us-central1-a")
    assert request["project"] == "fleetdeck-ml"
    body = request["instances"][0]
    assert body["machineType"] == "zones/us-central1-a/machineTypes/a3-highgpu-8g"
    assert body["scheduling"]["provisioningModel"] == "STANDARD"  # GCP has no spot price loaded here
    assert body["labels"] == {"fleetdeck-job": str(job.pk), "team": "research", "project": "llm"}


def test_instance_count_launches_that_many(scenario):
    job = scenario.job(gpu_count=16, allowed_providers=["aws"], allowed_regions=["us-west-2"])
    jobs_place()
    placement = Placement.objects.get(job=job)
    assert placement.instance_count == 2
    request = launch_request_build(placement=placement, provider=Provider.objects.get(name="aws-main"))
    assert request["parameters"]["MinCount"] == request["parameters"]["MaxCount"] == 2
    assert "InstanceMarketOptions" not in request["parameters"]
    assert placement.launch_request == request


def test_live_launch_runs_instances_and_sync_picks_them_up(
    scenario,
    settings,
    aws,
    eager,
    django_capture_on_commit_callbacks,
):
    settings.SCHEDULER_LAUNCH = "live"
    settings.SCHEDULER_AWS_IMAGE_ID = IMAGE_ID
    provider = Provider.objects.get(name="aws-main")
    job = scenario.job(allowed_providers=["aws"], spot_allowed=True)
    with django_capture_on_commit_callbacks(execute=True):
        report = tasks.jobs_place()  # the task: the service saves the launch call, the task queues it
    assert report["launches"] == 1
    placement = Placement.objects.get(job=job)
    assert placement.launch_status == LaunchStatus.LAUNCHED, placement.launch_error
    (instance_id,) = placement.launch_request["result"]["instance_ids"]
    assert placement.launch_request["parameters"]["ClientToken"] == f"fleetdeck-placement-{placement.pk}"

    described = aws.client("us-east-1").describe_instances(InstanceIds=[instance_id])
    instance = described["Reservations"][0]["Instances"][0]
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tags == {
        "Name": f"fleetdeck-job-{job.pk}",
        "fleetdeck:job": str(job.pk),
        "team": "research",
        "project": "llm",
    }
    assert instance["InstanceType"] == "p5.48xlarge"
    assert instance["ClientToken"] == f"fleetdeck-placement-{placement.pk}"  # EC2 dedupes a retried call on it
    assert instance.get("InstanceLifecycle") == "spot"

    inventory_sync(provider=provider)
    node = Node.objects.get(external_id=instance_id)
    assert (node.team, node.project, node.labels["fleetdeck:job"]) == (scenario.team, scenario.project, str(job.pk))

    # The launched node is the job's: placement does not offer its GPUs to another job until the job ends.
    from django.utils import timezone

    from scheduler.inputs import fleet_inputs

    assert node.pk not in {n.id for n in fleet_inputs(now=timezone.now()).nodes}
    job_transition(job=job, state="running")
    job_transition(job=job, state="succeeded")
    assert node.pk in {n.id for n in fleet_inputs(now=timezone.now()).nodes}

    # A second delivery of the launch task does nothing.
    placement_launch(placement_id=placement.pk)
    assert len(aws.client("us-east-1").describe_instances()["Reservations"]) == 1


def test_live_launch_without_an_image_fails_clearly(scenario, settings, aws, eager, django_capture_on_commit_callbacks):
    settings.SCHEDULER_LAUNCH = "live"
    settings.SCHEDULER_AWS_IMAGE_ID = ""
    job = scenario.job(allowed_providers=["aws"], allowed_regions=["us-west-2"])  # its data moves: planned egress
    with django_capture_on_commit_callbacks(execute=True):
        tasks.jobs_place()
    placement = Placement.objects.get(job=job)
    assert placement.launch_status == LaunchStatus.FAILED
    assert "SCHEDULER_AWS_IMAGE_ID" in placement.launch_error
    assert aws.client("us-east-1").describe_instances()["Reservations"] == []
    # The job is not left placed on capacity that never came up: it is pending again, saying why.
    assert not placement.active
    assert not EgressRecord.objects.filter(placement=placement).exists()
    job.refresh_from_db()
    assert job.state == JobState.PENDING and "SCHEDULER_AWS_IMAGE_ID" in job.pending_reason


def test_a_job_cancelled_before_its_launch_ran_gets_no_instances(scenario, settings, aws):
    settings.SCHEDULER_LAUNCH = "live"
    settings.SCHEDULER_AWS_IMAGE_ID = IMAGE_ID
    job = scenario.job(allowed_providers=["aws"], spot_allowed=True)
    jobs_place()
    placement = Placement.objects.get(job=job)
    job_transition(job=job, state=JobState.CANCELLED)
    placement_launch(placement_id=placement.pk)  # the launch task, delivered after the cancel
    job.refresh_from_db()
    placement.refresh_from_db()
    assert job.state == JobState.CANCELLED and placement.launch_status == LaunchStatus.NONE
    assert aws.client("us-east-1").describe_instances()["Reservations"] == []


def test_launch_requests_carry_idempotency_tokens(scenario):
    aws_job = scenario.job(allowed_providers=["aws"])
    gcp_job = scenario.job(name="gcp", gpu_count=16, allowed_providers=["gcp"])
    jobs_place()
    aws_placement, gcp_placement = Placement.objects.get(job=aws_job), Placement.objects.get(job=gcp_job)
    assert aws_placement.launch_request["parameters"]["ClientToken"] == f"fleetdeck-placement-{aws_placement.pk}"
    ids = gcp_placement.launch_request["request_ids"]
    assert len(ids) == len(set(ids)) == 2  # one per instance insert
    assert ids == [str(uuid.UUID(i)) for i in ids]
    rebuilt = launch_request_build(placement=gcp_placement, provider=Provider.objects.get(name="gcp-main"))
    assert rebuilt["request_ids"] == ids  # derived from the placement id: the same on every retry


def test_live_gce_insert_launches_and_sync_picks_it_up(
    scenario, settings, gce, eager, django_capture_on_commit_callbacks
):
    settings.SCHEDULER_LAUNCH = "live"
    settings.SCHEDULER_GCP_IMAGE = "projects/deeplearning-platform-release/global/images/family/common-cu124"
    provider = Provider.objects.get(name="gcp-main")
    provider.regions = ["us-central1"]
    provider.save()
    job = scenario.job(allowed_providers=["gcp"])
    with django_capture_on_commit_callbacks(execute=True):
        tasks.jobs_place()
    placement = Placement.objects.get(job=job)
    assert placement.launch_status == LaunchStatus.LAUNCHED, placement.launch_error
    assert placement.launch_request["result"]["operations"]
    (request_id,) = placement.launch_request["request_ids"]
    assert any(
        r.startswith("POST /compute/v1/projects/fleetdeck-ml/zones/us-central1-a/instances")
        and f"requestId={request_id}" in r
        for r in gce.requests
    )

    inventory_sync(provider=provider)
    node = Node.objects.get(name=f"fleetdeck-job-{job.pk}")
    assert node.instance_type == "a3-highgpu-8g" and node.gpus.count() == 8
    assert (node.team, node.project, node.labels["fleetdeck-job"]) == (scenario.team, scenario.project, str(job.pk))


def test_live_gce_error_marks_the_launch_failed(scenario, settings, gce, eager, django_capture_on_commit_callbacks):
    settings.SCHEDULER_LAUNCH = "live"
    settings.SCHEDULER_GCP_IMAGE = "projects/debian-cloud/global/images/family/debian-12"
    gce.fail("fleetdeck-ml", 403)
    job = scenario.job(allowed_providers=["gcp"])
    with django_capture_on_commit_callbacks(execute=True):
        tasks.jobs_place()
    placement = Placement.objects.get(job=job)
    assert placement.launch_status == LaunchStatus.FAILED and "403" in placement.launch_error
    assert not placement.active
    job.refresh_from_db()
    assert job.state == JobState.PENDING and "403" in job.pending_reason


@pytest.fixture
def live_aws_placement(scenario, settings, aws):
    """A live-mode offer placement on AWS, saved and not yet launched."""
    settings.SCHEDULER_LAUNCH = "live"
    settings.SCHEDULER_AWS_IMAGE_ID = IMAGE_ID
    job = scenario.job(allowed_providers=["aws"], spot_allowed=True)
    jobs_place()
    return Placement.objects.get(job=job)


@pytest.fixture
def during_run_instances(monkeypatch):
    """``during_run_instances(fn, *, fail=False)``: ``fn()`` runs while EC2's RunInstances is in flight (after
    moto answered), as another delivery or request would meanwhile; ``fail`` then makes the call raise."""
    from botocore.client import BaseClient
    from botocore.exceptions import ClientError

    make_api_call = BaseClient._make_api_call

    def install(fn, *, fail: bool = False):
        def call(client, operation, params):
            if operation != "RunInstances":
                return make_api_call(client, operation, params)
            response = make_api_call(client, operation, params) if not fail else None
            fn()
            if fail:
                raise ClientError({"Error": {"Code": "RequestLimitExceeded", "Message": "throttled"}}, operation)
            return response

        monkeypatch.setattr(BaseClient, "_make_api_call", call)

    return install


@pytest.mark.django_db(transaction=True)  # committed rows, visible to a second connection; no test transaction
def test_the_cloud_call_holds_no_transaction_or_row_lock(live_aws_placement, during_run_instances):
    """A slow RunInstances (retries, a stuck endpoint) must not hold the placement's row or a transaction open."""
    from django.db import connection, connections

    placement, seen = live_aws_placement, {}

    def observe():
        seen["in_transaction"] = connection.in_atomic_block
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:  # NOWAIT: fails at once if the row is locked
                cursor.execute("BEGIN")
                cursor.execute("SELECT id FROM scheduler_placement WHERE id = %s FOR UPDATE NOWAIT", [placement.pk])
                seen["row_free"] = cursor.fetchone() == (placement.pk,)
                cursor.execute("ROLLBACK")
        finally:
            other.close()

    during_run_instances(observe)
    placement_launch(placement_id=placement.pk)
    placement.refresh_from_db()
    assert placement.launch_status == LaunchStatus.LAUNCHED, placement.launch_error
    assert seen == {"in_transaction": False, "row_free": True}


def test_an_outcome_saved_by_another_delivery_meanwhile_is_kept(live_aws_placement, during_run_instances, aws):
    """Two deliveries race: the idempotency token makes EC2 start one set; the first outcome saved stays."""
    placement = live_aws_placement
    during_run_instances(
        lambda: Placement.objects.filter(pk=placement.pk).update(
            launch_status=LaunchStatus.LAUNCHED, launch_error="first"
        )
    )
    placement_launch(placement_id=placement.pk)
    placement.refresh_from_db()
    assert (placement.launch_status, placement.launch_error) == (LaunchStatus.LAUNCHED, "first")
    assert len(aws.client("us-east-1").describe_instances()["Reservations"]) == 1


def test_a_success_after_another_deliverys_failure_is_recorded_not_lost(
    live_aws_placement, during_run_instances, caplog
):
    """Two deliveries race; the other one's call failed and was saved first (the job went back to the queue).
    The instances this call started must not vanish from the record."""
    placement = live_aws_placement
    during_run_instances(
        lambda: Placement.objects.filter(pk=placement.pk).update(
            launch_status=LaunchStatus.FAILED, launch_error="throttled", active=False
        )
    )
    placement_launch(placement_id=placement.pk)
    placement.refresh_from_db()
    assert (placement.launch_status, placement.launch_error) == (LaunchStatus.FAILED, "throttled")
    (instance_id,) = placement.launch_request["late_result"]["instance_ids"]
    assert instance_id.startswith("i-") and "launch succeeded after another delivery" in caplog.text


def test_a_failed_launch_of_a_superseded_placement_leaves_the_jobs_new_placement(
    live_aws_placement, during_run_instances, scenario
):
    """While the call was in flight the job was re-queued and placed again (on dc-1's node): the stale launch's
    failure is recorded on its own placement and must not send the job, placed elsewhere, back to the queue."""
    old = live_aws_placement
    job = old.job

    def replaced():
        Placement.objects.filter(pk=old.pk).update(active=False)
        Placement.objects.create(
            job=job,
            active=True,
            target_kind="node",
            node=scenario.node,
            gpu_count=8,
            provider_kind="onprem",
            **dict.fromkeys(("usd_per_h", "compute_usd", "egress_usd", "total_usd"), 1),
        )

    during_run_instances(replaced, fail=True)
    placement_launch(placement_id=old.pk)
    old.refresh_from_db()
    job.refresh_from_db()
    assert (old.launch_status, old.active) == (LaunchStatus.FAILED, False) and "throttled" in old.launch_error
    assert job.state == JobState.PLACED and job.pending_reason == ""
    assert Placement.objects.get(job=job, active=True).node == scenario.node
