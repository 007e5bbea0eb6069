"""AWS inventory: EC2 ``DescribeInstances`` per region, GPU shapes from ``DescribeInstanceTypes`` ``GpuInfo``."""

from __future__ import annotations

import logging
import os
from datetime import datetime

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from fleet.catalog import GPU_SPECS, INSTANCE_TYPES
from fleet.choices import NodeLifecycle, NodeSource, NodeState, ProviderKind
from fleet.inventory.base import (
    DiscoveredGPU,
    DiscoveredNode,
    DiscoveryError,
    gpu_from_spec,
    gpu_spec_find,
    gpu_unknown,
    labels_clean,
)
from fleet.models import Provider

logger = logging.getLogger(__name__)

AWS_CONNECT_TIMEOUT_S = 5
AWS_READ_TIMEOUT_S = 30
AWS_MAX_ATTEMPTS = 3
# DescribeInstanceTypes accepts at most 100 names per call.
INSTANCE_TYPES_PER_CALL = 100
DESCRIBE_INSTANCES_PAGE_SIZE = 1000

STATES = {
    "pending": NodeState.RUNNING,
    "running": NodeState.RUNNING,
    "stopping": NodeState.STOPPED,
    "stopped": NodeState.STOPPED,
    "shutting-down": NodeState.TERMINATED,
    "terminated": NodeState.TERMINATED,
}


def aws_client_config(**overrides) -> Config:
    """The botocore settings of every AWS client Fleetdeck makes (EC2, S3, Cost Explorer, Price List): a hung API
    fails a call after AWS_CONNECT_TIMEOUT_S to connect or AWS_READ_TIMEOUT_S without a byte, at most
    AWS_MAX_ATTEMPTS times; the task's time limit (CELERY_TASK_TIME_LIMIT_S) bounds the whole."""
    settings = {
        "connect_timeout": AWS_CONNECT_TIMEOUT_S,
        "read_timeout": AWS_READ_TIMEOUT_S,
        "retries": {"max_attempts": AWS_MAX_ATTEMPTS, "mode": "standard"},
    }
    return Config(**{**settings, **overrides})


class AwsAdapter:
    """EC2 instances with GPUs, one scope per configured region."""

    source = NodeSource.AWS
    errors = (BotoCoreError, ClientError)

    def __init__(self) -> None:
        # (region, instance type) → its GPUs, or None for a type without GPUs; lives for one sync.
        self._gpus_by_type: dict[tuple[str, str], list[DiscoveredGPU] | None] = {}

    def scopes(self, provider: Provider) -> list[str]:
        return list(dict.fromkeys(provider.regions))

    def scope_regions(self, provider: Provider, scope: str) -> list[str] | None:
        return [scope]

    def ec2_client(self, provider: Provider, region: str):
        """An EC2 client for ``region`` with the provider's credentials, bounded timeouts and standard retries."""
        return session_for(provider.credential_ref).client("ec2", region_name=region, config=aws_client_config())

    def discover(self, provider: Provider, scope: str) -> list[DiscoveredNode]:
        client = self.ec2_client(provider, scope)
        instances = []
        paginator = client.get_paginator("describe_instances")
        for page in paginator.paginate(PaginationConfig={"PageSize": DESCRIBE_INSTANCES_PAGE_SIZE}):
            for reservation in page.get("Reservations", []):
                instances.extend(reservation.get("Instances", []))
        types = {i["InstanceType"] for i in instances if i.get("InstanceType")}
        self._instance_types_load(client, scope, types)
        nodes = []
        for instance in instances:
            node = self._node(instance, scope)
            if node is not None:
                nodes.append(node)
        return nodes

    def _instance_types_load(self, client, region: str, types: set[str]) -> None:
        missing = sorted(t for t in types if (region, t) not in self._gpus_by_type)
        paginator = client.get_paginator("describe_instance_types")
        for start in range(0, len(missing), INSTANCE_TYPES_PER_CALL):
            chunk = missing[start : start + INSTANCE_TYPES_PER_CALL]
            for page in paginator.paginate(InstanceTypes=chunk):
                for record in page.get("InstanceTypes", []):
                    self._gpus_by_type[(region, record["InstanceType"])] = gpus_from_gpu_info(record.get("GpuInfo"))

    def _node(self, instance: dict, region: str) -> DiscoveredNode | None:
        instance_id = instance.get("InstanceId")
        instance_type = instance.get("InstanceType", "")
        if not instance_id:
            logger.warning("AWS %s: an instance without InstanceId was skipped", region)
            return None
        warnings: list[str] = []
        gpus = self._gpus_by_type.get((region, instance_type))
        if not gpus:
            # A GPU type the API left undescribed (or described without GpuInfo) is still a GPU node.
            gpus = gpus_from_catalog(instance_type)
            if not gpus:
                return None
            warnings.append(f"{instance_type}: no GpuInfo from DescribeInstanceTypes; GPUs from the catalog")
        tags = {tag.get("Key"): tag.get("Value", "") for tag in instance.get("Tags") or [] if tag.get("Key")}
        labels = labels_clean(tags, warnings)
        zone = (instance.get("Placement") or {}).get("AvailabilityZone", "")
        if not zone:
            warnings.append("no availability zone; filed under the region")
        state_name = (instance.get("State") or {}).get("Name", "")
        state = STATES.get(state_name)
        if state is None:
            warnings.append(f"unknown instance state {state_name!r}; recorded as running")
            state = NodeState.RUNNING
        launched_at = instance.get("LaunchTime")
        if not isinstance(launched_at, datetime):
            if launched_at is not None:
                warnings.append(f"unreadable LaunchTime {str(launched_at)[:40]!r}")
            launched_at = None
        for warning in warnings:
            logger.warning("AWS %s %s: %s", region, instance_id, warning)
        return DiscoveredNode(
            external_id=instance_id,
            name=tags.get("Name") or instance_id,
            region=region,
            zone=zone,
            instance_type=instance_type,
            lifecycle=NodeLifecycle.SPOT if instance.get("InstanceLifecycle") == "spot" else NodeLifecycle.ON_DEMAND,
            state=state,
            launched_at=launched_at,
            labels=labels,
            gpus=gpus,
            warnings=warnings,
            private_ip=instance.get("PrivateIpAddress") or "",
        )


def session_for(credential_ref: str) -> boto3.Session:
    """A boto3 session for a credential reference: '' → default chain, 'profile:NAME', 'env:VAR' (→ a profile)."""
    kind, _, value = credential_ref.partition(":")
    if not credential_ref:
        return boto3.Session()
    if kind == "profile":
        return boto3.Session(profile_name=value)
    if kind == "env":
        profile = os.environ.get(value, "")
        if not profile:
            raise DiscoveryError(f"environment variable {value} (the AWS profile name) is not set")
        return boto3.Session(profile_name=profile)
    raise DiscoveryError(f"credential reference {credential_ref!r} is not usable for AWS; use profile: or env:")


def gpus_from_gpu_info(gpu_info: dict | None) -> list[DiscoveredGPU] | None:
    """A ``GpuInfo`` structure as NVML-named GPUs; None for an instance type without GPUs."""
    gpus = []
    for device in (gpu_info or {}).get("Gpus") or []:
        name = device.get("Name") or "?"
        count = device.get("Count") or 0
        memory_mib = (device.get("MemoryInfo") or {}).get("SizeInMiB")
        if not isinstance(count, int) or count <= 0:
            continue
        memory_mib = memory_mib if isinstance(memory_mib, int) and memory_mib > 0 else None
        spec = gpu_spec_find(name, memory_mib)
        if spec is None:
            manufacturer = device.get("Manufacturer") or ""
            gpus.append(gpu_unknown(f"{manufacturer} {name}".strip(), count, memory_mib=memory_mib))
        else:
            gpus.append(gpu_from_spec(spec, count, memory_mib=memory_mib))
    return gpus or None


def gpus_from_catalog(instance_type: str) -> list[DiscoveredGPU] | None:
    """The GPUs Fleetdeck's catalog knows for an AWS type, for when the API leaves it undescribed."""
    known = INSTANCE_TYPES.get(instance_type)
    if known is None or known.provider != ProviderKind.AWS:
        return None
    return [gpu_from_spec(GPU_SPECS[known.gpu], known.gpu_count)]
