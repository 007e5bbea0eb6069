"""Launching the cloud capacity a placement chose: EC2 ``RunInstances`` or GCE ``instances.insert``.

``settings.SCHEDULER_LAUNCH`` is ``"dry-run"`` (the default: the exact call is recorded on the placement and
nothing is called) or ``"live"`` (the call is made after the placement commits, by a scheduler task, with the
credentials of the provider account inventory sync uses). A launched instance carries the job's tags, so the
next inventory sync files it under the job's team and project. Each call carries an idempotency token derived
from the placement's id (EC2 ``ClientToken``, GCE ``requestId``), so a retried or re-delivered launch never
starts a second set of instances. A launch that fails sends its job back to the queue with the error.
"""

from __future__ import annotations

import json
import logging
import uuid
from functools import partial

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.db import transaction

from billing.models import EgressRecord
from fleet.choices import ProviderKind
from fleet.inventory.aws import aws_client_config, session_for
from fleet.inventory.base import DiscoveryError
from scheduler.choices import JobState, LaunchStatus, TargetKind
from scheduler.models import Job, Placement

logger = logging.getLogger(__name__)

LAUNCH_MODES = ("dry-run", "live")
JOB_TAG = "fleetdeck:job"
GCE_JOB_LABEL = "fleetdeck-job"  # GCE label keys allow no ':'
# A region's zone to launch in, where "<region>-a" does not exist.
GCE_ZONE_BY_REGION = {"us-east1": "us-east1-b", "europe-west1": "europe-west1-b"}
# Namespace of the GCE requestIds (UUIDs) derived from placement ids: stable across processes and retries.
GCE_REQUEST_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://fleetdeck/scheduler/placement")


def launch_mode() -> str:
    """``dry-run`` or ``live`` (SCHEDULER_LAUNCH; anything unknown is treated as dry-run)."""
    mode = getattr(settings, "SCHEDULER_LAUNCH", "dry-run")
    return mode if mode in LAUNCH_MODES else "dry-run"


def _provider_for(kind: str, providers: dict | None = None):
    if providers is None:
        from scheduler.services import launch_providers

        providers = launch_providers()
    return providers.get(kind)


def ec2_client_token(placement_id: int) -> str:
    """The EC2 ``ClientToken`` of a placement's RunInstances (at most 64 ASCII characters)."""
    return f"fleetdeck-placement-{placement_id}"[:64]


def gce_request_id(placement_id: int, index: int) -> str:
    """The GCE ``requestId`` of a placement's ``index``-th instances.insert: a UUID fixed by the two numbers."""
    return str(uuid.uuid5(GCE_REQUEST_NAMESPACE, f"placement-{placement_id}-instance-{index}"))


def _tags(job) -> dict[str, str]:
    tags = {JOB_TAG: str(job.pk), settings.INVENTORY_TEAM_TAG: job.team.slug}
    if job.project_id:
        tags[settings.INVENTORY_PROJECT_TAG] = job.project.slug
    return tags


def launch_request_build(*, placement: Placement, provider=None) -> dict:
    """The cloud API call that launches ``placement``'s instances: service, method, region/zone, parameters.

    A saved placement's call carries its idempotency token (EC2 ``ClientToken``, GCE ``request_ids``, one per
    instance insert)."""
    job = placement.job
    tags = _tags(job)
    name = f"fleetdeck-job-{job.pk}"
    if placement.provider_kind == ProviderKind.AWS:
        parameters = {
            "ImageId": getattr(settings, "SCHEDULER_AWS_IMAGE_ID", ""),
            "InstanceType": placement.instance_type,
            "MinCount": placement.instance_count,
            "MaxCount": placement.instance_count,
            "TagSpecifications": [
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": "Name", "Value": name}] + [{"Key": k, "Value": v} for k, v in tags.items()],
                }
            ],
        }
        if placement.pk:
            parameters["ClientToken"] = ec2_client_token(placement.pk)
        if placement.spot:
            parameters["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
            }
        return {
            "service": "ec2",
            "method": "run_instances",
            "provider": provider.name if provider else "",
            "region": placement.region,
            "parameters": parameters,
        }
    zone = GCE_ZONE_BY_REGION.get(placement.region, f"{placement.region}-a")
    labels = {GCE_JOB_LABEL: str(job.pk), **{k: v for k, v in tags.items() if k != JOB_TAG}}
    instances = []
    for index in range(placement.instance_count):
        instances.append(
            {
                "name": f"{name}-{index}" if placement.instance_count > 1 else name,
                "machineType": f"zones/{zone}/machineTypes/{placement.instance_type}",
                "labels": labels,
                "scheduling": {
                    "provisioningModel": "SPOT" if placement.spot else "STANDARD",
                    "onHostMaintenance": "TERMINATE",
                    "automaticRestart": not placement.spot,
                },
                "disks": [
                    {
                        "boot": True,
                        "autoDelete": True,
                        "initializeParams": {"sourceImage": getattr(settings, "SCHEDULER_GCP_IMAGE", "")},
                    }
                ],
                "networkInterfaces": [{"network": "global/networks/default"}],
            }
        )
    request = {
        "service": "compute",
        "method": "instances.insert",
        "provider": provider.name if provider else "",
        "project": provider.account_id if provider else "",
        "zone": zone,
        "instances": instances,
    }
    if placement.pk:
        request["request_ids"] = [gce_request_id(placement.pk, index) for index in range(len(instances))]
    return request


def placement_launch_prepare(*, placement: Placement, providers: dict | None = None) -> None:
    """Record the launch call on an offer placement (``providers``: launch_providers(), to look them up once per
    batch): dry-run marks it done, live leaves it to a task. The caller saves it."""
    provider = _provider_for(placement.provider_kind, providers)
    placement.launch_request = launch_request_build(placement=placement, provider=provider)
    placement.launch_status = LaunchStatus.DRY_RUN if launch_mode() == "dry-run" else LaunchStatus.NONE


def placements_launch_enqueue(*, placements: list[Placement]) -> int:
    """After commit, queue the live launch of each offer placement; return how many launches were recorded."""
    offers = [p for p in placements if p.target_kind == TargetKind.OFFER]
    if launch_mode() == "live":
        from scheduler.tasks import placement_launch as placement_launch_task

        for placement in offers:
            transaction.on_commit(partial(placement_launch_task.delay, placement.pk))
    return len(offers)


def _ec2_run(provider, request: dict) -> dict:
    config = aws_client_config()
    client = session_for(provider.credential_ref).client("ec2", region_name=request["region"], config=config)
    response = client.run_instances(**request["parameters"])
    return {"instance_ids": [i["InstanceId"] for i in response.get("Instances", [])]}


def _gce_insert(provider, request: dict) -> dict:
    from google.cloud import compute_v1

    from fleet.inventory.gcp import GCP_TIMEOUT_S, client_auth

    credentials, options = client_auth(provider.credential_ref)
    client = compute_v1.InstancesClient(transport="rest", credentials=credentials, client_options=options)
    operations = []
    request_ids = request.get("request_ids") or [None] * len(request["instances"])
    for body, request_id in zip(request["instances"], request_ids, strict=True):
        insert = compute_v1.InsertInstanceRequest(
            project=request["project"],
            zone=request["zone"],
            instance_resource=compute_v1.Instance.from_json(json.dumps(body)),
        )
        if request_id:
            insert.request_id = request_id  # GCE ignores a repeated insert with the same requestId
        operation = client.insert(request=insert, timeout=GCP_TIMEOUT_S)
        operations.append(operation.name)
    return {"operations": operations}


def _launch_failed_requeue(placement: Placement, error: str) -> None:
    """A failed launch: the placement goes inactive, its planned egress goes (the data never moved) and its job,
    if still placed, goes back to pending with the error as its reason (the next placement run retries)."""
    placement.active = False
    EgressRecord.objects.filter(placement=placement, planned=True).delete()
    Job.objects.filter(pk=placement.job_id, state=JobState.PLACED).update(
        state=JobState.PENDING, pending_reason=f"Re-queued: launching its cloud capacity failed: {error}"[:500]
    )


def placement_launch(*, placement_id: int) -> Placement | None:
    """Make the recorded launch call of one offer placement (live mode); a second call does nothing.

    On failure the error is kept on the placement, which goes inactive, and its job goes back to pending."""
    from google.api_core import exceptions as gcp_exceptions
    from google.auth.exceptions import GoogleAuthError

    with transaction.atomic():
        placement = (
            Placement.objects.select_for_update(of=("self",))
            .select_related("job__team", "job__project")
            .filter(pk=placement_id, target_kind=TargetKind.OFFER, active=True)
            .first()
        )
        if placement is None or placement.launch_status != LaunchStatus.NONE:
            return placement
        provider = _provider_for(placement.provider_kind)
        request = launch_request_build(placement=placement, provider=provider)
        placement.launch_request = request
        try:
            if provider is None:
                raise DiscoveryError(f"no enabled {placement.provider_kind} provider account to launch with")
            if placement.provider_kind == ProviderKind.AWS:
                if not request["parameters"]["ImageId"]:
                    raise DiscoveryError("set SCHEDULER_AWS_IMAGE_ID to the AMI to launch")
                result = _ec2_run(provider, request)
            else:
                if not request["instances"][0]["disks"][0]["initializeParams"]["sourceImage"]:
                    raise DiscoveryError("set SCHEDULER_GCP_IMAGE to the boot image to launch")
                result = _gce_insert(provider, request)
        except (BotoCoreError, ClientError, DiscoveryError, gcp_exceptions.GoogleAPIError, GoogleAuthError) as exc:
            logger.warning("launch of placement %s failed: %s", placement.pk, exc)
            placement.launch_status, placement.launch_error = LaunchStatus.FAILED, str(exc)[:500]
            _launch_failed_requeue(placement, placement.launch_error)
        else:
            placement.launch_request = {**request, "result": result}
            placement.launch_status, placement.launch_error = LaunchStatus.LAUNCHED, ""
        placement.save(update_fields=["launch_request", "launch_status", "launch_error", "active"])
    return placement
