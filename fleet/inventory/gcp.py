"""GCP inventory: ``instances.aggregatedList`` per project (REST transport), GPUs from ``guestAccelerators`` and
from the machine types that carry built-in GPUs (a2, a3, a4, g2)."""

from __future__ import annotations

import logging
import os
from datetime import datetime

import google.auth
import requests
from django.conf import settings
from google.api_core import exceptions as api_exceptions
from google.api_core import retry as api_retry
from google.auth.credentials import AnonymousCredentials, Credentials
from google.auth.exceptions import GoogleAuthError
from google.cloud import compute_v1
from google.oauth2 import service_account

from fleet.catalog import GPU_SPECS, INSTANCE_TYPES
from fleet.choices import NodeLifecycle, NodeSource, NodeState, ProviderKind
from fleet.inventory.base import (
    DiscoveredGPU,
    DiscoveredNode,
    DiscoveryError,
    gpu_from_spec,
    gpu_unknown,
    labels_clean,
    memory_from_name,
)
from fleet.models import Provider

logger = logging.getLogger(__name__)

GCP_TIMEOUT_S = 30
GCP_RETRY_DEADLINE_S = 60
GCP_RETRY_INITIAL_S = 0.5
GCP_RETRY_MAXIMUM_S = 10
GCP_PAGE_SIZE = 500
COMPUTE_READONLY_SCOPE = "https://www.googleapis.com/auth/compute.readonly"
# Machine families whose GPUs come with the machine type rather than as guestAccelerators.
ACCELERATOR_MACHINE_PREFIXES = ("a2-", "a3-", "a4-", "g2-")

# GCE accelerator type name → fleet.catalog.GPU_SPECS key.
ACCELERATORS = {
    "nvidia-tesla-t4": "T4",
    "nvidia-tesla-t4-vws": "T4",
    "nvidia-l4": "L4",
    "nvidia-l4-vws": "L4",
    "nvidia-tesla-a100": "A100-40GB",
    "nvidia-a100-80gb": "A100-80GB",
    "nvidia-h100-80gb": "H100",
    "nvidia-h100-mega-80gb": "H100",
    "nvidia-h200-141gb": "H200",
    "nvidia-b200": "B200",
}

# GCE's TERMINATED means stopped (the VM and its disks still exist); deleted VMs simply vanish from the list.
STATES = {
    "PROVISIONING": NodeState.RUNNING,
    "STAGING": NodeState.RUNNING,
    "RUNNING": NodeState.RUNNING,
    "REPAIRING": NodeState.RUNNING,
    "PENDING_STOP": NodeState.STOPPED,
    "STOPPING": NodeState.STOPPED,
    "STOPPED": NodeState.STOPPED,
    "SUSPENDING": NodeState.STOPPED,
    "SUSPENDED": NodeState.STOPPED,
    "TERMINATED": NodeState.STOPPED,
}


class GcpAdapter:
    """Compute Engine VMs with GPUs, one scope per provider (its project)."""

    source = NodeSource.GCP
    errors = (api_exceptions.GoogleAPIError, GoogleAuthError, requests.RequestException)

    def __init__(self) -> None:
        # machine type name → its built-in GPUs (None: none); lives for one sync.
        self._machine_gpus: dict[str, list[DiscoveredGPU] | None] = {}

    def scopes(self, provider: Provider) -> list[str]:
        return [provider.account_id] if provider.account_id else []

    def scope_regions(self, provider: Provider, scope: str) -> list[str] | None:
        return list(provider.regions) or None

    def clients(self, provider: Provider) -> tuple[compute_v1.InstancesClient, compute_v1.MachineTypesClient]:
        """REST clients with the provider's credentials, or anonymous ones against GCP_COMPUTE_ENDPOINT."""
        credentials, options = client_auth(provider.credential_ref)
        kwargs = {"transport": "rest", "credentials": credentials, "client_options": options}
        return compute_v1.InstancesClient(**kwargs), compute_v1.MachineTypesClient(**kwargs)

    def discover(self, provider: Provider, scope: str) -> list[DiscoveredNode]:
        instances, machine_types = self.clients(provider)
        regions = set(provider.regions)
        # No returnPartialSuccess: a listing that silently missed a zone would retire that zone's nodes.
        request = compute_v1.AggregatedListInstancesRequest(project=scope, max_results=GCP_PAGE_SIZE)
        nodes = []
        for scope_key, scoped in instances.aggregated_list(request=request, retry=_retry(), timeout=GCP_TIMEOUT_S):
            key_zone = scope_key.partition("zones/")[2]
            for instance in scoped.instances:
                zone = _last_segment(instance.zone) or key_zone
                region = zone.rpartition("-")[0]
                if regions and region not in regions:
                    continue
                node = self._node(instance, scope, zone, region, machine_types)
                if node is not None:
                    nodes.append(node)
        return nodes

    def _node(self, instance, project: str, zone: str, region: str, machine_types) -> DiscoveredNode | None:
        if not instance.id or not instance.name:
            logger.warning("GCP %s: an instance without id or name was skipped", project)
            return None
        warnings: list[str] = []
        machine_type = _last_segment(instance.machine_type)
        accelerators = [(_last_segment(a.accelerator_type), a.accelerator_count) for a in instance.guest_accelerators]
        gpus = gpus_from_accelerators(accelerators, warnings)
        if not gpus and machine_type.startswith(ACCELERATOR_MACHINE_PREFIXES):
            gpus = self._machine_type_gpus(machine_types, project, zone, machine_type, warnings)
        if not gpus:
            for warning in warnings:
                logger.warning("GCP %s %s skipped: %s", project, instance.name, warning)
            return None
        labels = labels_clean(dict(instance.labels), warnings)
        state = STATES.get(instance.status)
        if state is None:
            warnings.append(f"unknown instance status {instance.status!r}; recorded as running")
            state = NodeState.RUNNING
        scheduling = instance.scheduling
        spot = scheduling.provisioning_model == "SPOT" or scheduling.preemptible
        launched_at = _timestamp(instance.last_start_timestamp or instance.creation_timestamp, warnings)
        for warning in warnings:
            logger.warning("GCP %s %s: %s", project, instance.name, warning)
        return DiscoveredNode(
            external_id=str(instance.id),
            name=instance.name,
            region=region,
            zone=zone,
            instance_type=machine_type,
            lifecycle=NodeLifecycle.SPOT if spot else NodeLifecycle.ON_DEMAND,
            state=state,
            launched_at=launched_at,
            labels=labels,
            gpus=gpus,
            warnings=warnings,
            private_ip=instance.network_interfaces[0].network_i_p if instance.network_interfaces else "",
        )

    def _machine_type_gpus(self, client, project: str, zone: str, machine_type: str, warnings: list[str]):
        if machine_type not in self._machine_gpus:
            try:
                found = client.get(
                    project=project, zone=zone, machine_type=machine_type, retry=_retry(), timeout=GCP_TIMEOUT_S
                )
            except api_exceptions.NotFound:
                warnings.append(f"machine type {machine_type} not found; GPUs from the catalog")
                self._machine_gpus[machine_type] = gpus_from_catalog(machine_type)
            else:
                pairs = [
                    (_last_segment(a.guest_accelerator_type), a.guest_accelerator_count) for a in found.accelerators
                ]
                self._machine_gpus[machine_type] = gpus_from_accelerators(pairs, warnings)
        return self._machine_gpus[machine_type]


def client_auth(credential_ref: str) -> tuple[Credentials, dict | None]:
    """Credentials and client options: ADC ('' or 'adc'), a service-account file ('env:VAR'), or an emulator."""
    endpoint = settings.GCP_COMPUTE_ENDPOINT
    if endpoint:
        return AnonymousCredentials(), {"api_endpoint": endpoint}
    kind, _, value = credential_ref.partition(":")
    if credential_ref in ("", "adc"):
        credentials, _ = google.auth.default(scopes=[COMPUTE_READONLY_SCOPE])
        return credentials, None
    if kind == "env":
        path = os.environ.get(value, "")
        if not path:
            raise DiscoveryError(f"environment variable {value} (the service-account key file) is not set")
        try:
            credentials = service_account.Credentials.from_service_account_file(path, scopes=[COMPUTE_READONLY_SCOPE])
        except (OSError, ValueError) as exc:
            raise DiscoveryError(f"service-account key file from {value} is unusable: {exc}") from exc
        return credentials, None
    raise DiscoveryError(f"credential reference {credential_ref!r} is not usable for GCP; use adc or env:")


def gpus_from_accelerators(accelerators: list[tuple[str, int]], warnings: list[str]) -> list[DiscoveredGPU] | None:
    """(accelerator type, count) pairs as NVML-named GPUs; an unknown type is kept as 'unknown: <type>'."""
    gpus = []
    for name, count in accelerators:
        if count <= 0:
            continue
        key = ACCELERATORS.get(name)
        if key is None:
            warnings.append(f"unknown accelerator type {name!r}")
            gpus.append(gpu_unknown(name, count, memory_mib=memory_from_name(name)))
        else:
            gpus.append(gpu_from_spec(GPU_SPECS[key], count))
    return gpus or None


def gpus_from_catalog(machine_type: str) -> list[DiscoveredGPU] | None:
    """The built-in GPUs Fleetdeck's catalog knows for a GCP machine type."""
    known = INSTANCE_TYPES.get(machine_type)
    if known is None or known.provider != ProviderKind.GCP:
        return None
    return [gpu_from_spec(GPU_SPECS[known.gpu], known.gpu_count)]


def _retry() -> api_retry.Retry:
    # The client's default retries for ten minutes; one project must not hold the sync that long.
    return api_retry.Retry(
        initial=GCP_RETRY_INITIAL_S,
        maximum=GCP_RETRY_MAXIMUM_S,
        predicate=api_retry.if_exception_type(
            api_exceptions.TooManyRequests,
            api_exceptions.ServiceUnavailable,
            api_exceptions.InternalServerError,
            api_exceptions.DeadlineExceeded,
        ),
        timeout=GCP_RETRY_DEADLINE_S,
    )


def _last_segment(url: str) -> str:
    return url.rstrip("/").rpartition("/")[2]


def _timestamp(value: str, warnings: list[str]) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        warnings.append(f"unreadable timestamp {value[:40]!r}")
        return None
    if parsed.tzinfo is None:
        warnings.append(f"timestamp without a time zone {value[:40]!r}")
        return None
    return parsed
