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

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.db import transaction

from fleet.choices import ProviderKind
from fleet.inventory.aws import aws_client_config, session_for
from fleet.inventory.base import DiscoveryError
from fleet.models import Provider
from scheduler.choices import JobState, LaunchStatus, TargetKind
from scheduler.jobs import placements_requeue
from scheduler.models import Placement

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


def launch_providers() -> dict[str, Provider]:
    """The cloud account that launches (and is discounted) for each provider kind: the first enabled one by name."""
    chosen: dict[str, Provider] = {}
    for provider in Provider.objects.filter(enabled=True).exclude(kind=ProviderKind.ONPREM).order_by("name"):
        chosen.setdefault(provider.kind, provider)
    return chosen


def _provider_for(kind: str, providers: dict | None = None) -> Provider | None:
    return (launch_providers() if providers is None else providers).get(kind)


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


def placement_launch(*, placement_id: int) -> Placement | None:
    """Make the recorded launch call of one offer placement (live mode); a call once it is recorded does nothing.

    Only an active placement whose job is still placed is launched: a job cancelled (or re-queued) before its
    launch ran gets no instances. The cloud call runs outside any transaction or row lock (a slow or retried
    call holds no database resources); its idempotency token makes a concurrent or repeated delivery start
    nothing twice. Its outcome is then saved under the placement's row lock, unless another delivery saved one
    first; a success is never thrown away, though: if another delivery recorded a failure meanwhile (and sent
    the job back to the queue), the instances this call started are recorded on the placement and logged as an
    error for an operator. On failure the error is kept on the placement and its job goes back to the queue
    (``scheduler.jobs.placements_requeue``)."""
    placement = _launchable(placement_id).select_related("job__team", "job__project").first()
    if placement is None or placement.launch_status != LaunchStatus.NONE:
        return placement
    provider = _provider_for(placement.provider_kind)
    request = launch_request_build(placement=placement, provider=provider)
    result, error = _launch_call(placement, provider, request)
    with transaction.atomic():
        current = Placement.objects.select_for_update(of=("self",)).filter(pk=placement_id).first()
        if current is None or current.launch_status != LaunchStatus.NONE:
            if error is None and current is not None and current.launch_status == LaunchStatus.FAILED:
                _late_success_record(current, request, result)
            return current
        if error is None:
            current.launch_request = {**request, "result": result}
            current.launch_status, current.launch_error = LaunchStatus.LAUNCHED, ""
        else:
            current.launch_request = request
            current.launch_status, current.launch_error = LaunchStatus.FAILED, error[:500]
            placements_requeue(
                placement_ids=[current.pk],
                reason=f"Re-queued: launching its cloud capacity failed: {current.launch_error}",
            )
            current.active = False
        current.save(update_fields=["launch_request", "launch_status", "launch_error", "active"])
    return current


def _launchable(placement_id: int):
    """The active offer placement ``placement_id`` whose job is still placed, as a queryset."""
    return Placement.objects.filter(
        pk=placement_id, target_kind=TargetKind.OFFER, active=True, job__state=JobState.PLACED
    )


def _late_success_record(placement: Placement, request: dict, result: dict) -> None:
    """This delivery's call started instances after another delivery saved a failure (and re-queued the job):
    keep what was started on the placement, and tell an operator (inventory sync will list the instances, tagged
    with the job)."""
    logger.error(
        "placement %s: a launch succeeded after another delivery recorded its failure; started: %s",
        placement.pk,
        result,
    )
    placement.launch_request = {**placement.launch_request, "late_result": result, "late_request": request}
    placement.save(update_fields=["launch_request"])


def _launch_call(placement: Placement, provider: Provider | None, request: dict) -> tuple[dict | None, str | None]:
    """Make ``request``'s cloud call: (its result, None), or (None, why it failed)."""
    from google.api_core import exceptions as gcp_exceptions
    from google.auth.exceptions import GoogleAuthError

    try:
        if provider is None:
            raise DiscoveryError(f"no enabled {placement.provider_kind} provider account to launch with")
        if placement.provider_kind == ProviderKind.AWS:
            if not request["parameters"]["ImageId"]:
                raise DiscoveryError("set SCHEDULER_AWS_IMAGE_ID to the AMI to launch")
            return _ec2_run(provider, request), None
        if not request["instances"][0]["disks"][0]["initializeParams"]["sourceImage"]:
            raise DiscoveryError("set SCHEDULER_GCP_IMAGE to the boot image to launch")
        return _gce_insert(provider, request), None
    except (BotoCoreError, ClientError, DiscoveryError, gcp_exceptions.GoogleAPIError, GoogleAuthError) as exc:
        logger.warning("launch of placement %s failed: %s", placement.pk, exc)
        return None, str(exc)
