"""What every cloud adapter returns, and the small interface the sync service talks to."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from django.core.exceptions import ValidationError

from fleet.catalog import GPU_SPECS, GpuSpec
from fleet.choices import Continent, NodeSource
from fleet.models import Provider
from fleet.validators import validate_labels

# A GPU whose cloud name no catalog entry matches keeps the node in the inventory under this model name.
UNKNOWN_GPU_PREFIX = "unknown: "
# GPU.memory_mib must be positive; this stands for "the cloud did not say" (documented in docs/inventory.md).
UNKNOWN_MEMORY_MIB = 1

# Region name prefixes of AWS (us-east-1) and GCP (northamerica-northeast1).
_CONTINENT_PREFIXES: tuple[tuple[str, Continent], ...] = (
    ("northamerica-", Continent.NORTH_AMERICA),
    ("southamerica-", Continent.SOUTH_AMERICA),
    ("australia-", Continent.OCEANIA),
    ("europe-", Continent.EUROPE),
    ("africa-", Continent.AFRICA),
    ("asia-", Continent.ASIA),
    ("us-", Continent.NORTH_AMERICA),
    ("ca-", Continent.NORTH_AMERICA),
    ("mx-", Continent.NORTH_AMERICA),
    ("eu-", Continent.EUROPE),
    ("sa-", Continent.SOUTH_AMERICA),
    ("me-", Continent.MIDDLE_EAST),
    ("il-", Continent.MIDDLE_EAST),
    ("af-", Continent.AFRICA),
    ("ap-", Continent.ASIA),
)
# AWS Asia Pacific regions that are in Oceania: Sydney, Melbourne, Auckland.
_OCEANIA_REGIONS = frozenset({"ap-southeast-2", "ap-southeast-4", "ap-southeast-6"})


class DiscoveryError(Exception):
    """A scope cannot be inventoried for a reason of our own making (bad credential reference, bad response)."""


@dataclass(frozen=True)
class DiscoveredGPU:
    """``count`` identical GPUs of one node, named as NVML names them."""

    model: str
    memory_mib: int
    power_limit_w: int | None
    count: int


@dataclass
class DiscoveredNode:
    """One GPU instance as a cloud API reported it, already mapped to Fleetdeck's vocabulary."""

    external_id: str
    name: str
    region: str
    zone: str
    instance_type: str
    lifecycle: str
    state: str
    launched_at: datetime | None
    labels: dict[str, str]
    gpus: list[DiscoveredGPU]
    warnings: list[str] = field(default_factory=list)
    private_ip: str = ""

    @property
    def gpu_count(self) -> int:
        return sum(gpu.count for gpu in self.gpus)


class InventoryAdapter(Protocol):
    """A cloud's inventory: which scopes (regions, projects) a provider has, and the GPU nodes in each."""

    source: NodeSource
    # The exceptions a cloud call raises when the cloud (not our code) fails; the sync records them per scope.
    errors: tuple[type[BaseException], ...]

    def scopes(self, provider: Provider) -> list[str]:
        """The units synced (and backed off) independently: AWS regions, the GCP project."""
        ...

    def scope_regions(self, provider: Provider, scope: str) -> list[str] | None:
        """The regions a scope's listing covers (None: all), so unlisted nodes there can be retired."""
        ...

    def discover(self, provider: Provider, scope: str) -> list[DiscoveredNode]:
        """Every GPU node of ``scope`` as the cloud lists it now."""
        ...


def continent_for_region(region: str) -> Continent | None:
    """The continent of an AWS or GCP region name (us-east-1, europe-west4), or None if unrecognised."""
    region = region.lower()
    if region in _OCEANIA_REGIONS:
        return Continent.OCEANIA
    for prefix, continent in _CONTINENT_PREFIXES:
        if region.startswith(prefix):
            return continent
    return None


def gpu_spec_find(name: str, memory_mib: int | None = None) -> GpuSpec | None:
    """The catalog GPU a cloud's short name (H100, A100 + memory) or an NVML name stands for."""
    for spec in GPU_SPECS.values():
        if name in (spec.key, spec.nvml_name):
            return spec
    # Keys like "A100-40GB" share one cloud name; the memory tells them apart.
    candidates = [spec for spec in GPU_SPECS.values() if spec.key.startswith(f"{name}-")]
    if memory_mib is not None:
        candidates = [spec for spec in candidates if spec.memory_mib == memory_mib]
    return candidates[0] if len(candidates) == 1 else None


def gpu_from_spec(spec: GpuSpec, count: int, *, memory_mib: int | None = None) -> DiscoveredGPU:
    """``count`` GPUs of a catalog model; the cloud's memory figure, when it gives one, wins."""
    return DiscoveredGPU(spec.nvml_name, memory_mib or spec.memory_mib, spec.power_limit_w, count)


def gpu_unknown(cloud_name: str, count: int, *, memory_mib: int | None = None) -> DiscoveredGPU:
    """GPUs of a model the catalog does not know: the node stays in the inventory, named for a person to fix."""
    model = f"{UNKNOWN_GPU_PREFIX}{cloud_name}"[:100]
    return DiscoveredGPU(model, memory_mib if memory_mib and memory_mib > 0 else UNKNOWN_MEMORY_MIB, None, count)


def labels_clean(raw: dict, warnings: list[str]) -> dict[str, str]:
    """Cloud tags/labels as Fleetdeck labels; an entry the label rules refuse is dropped with a warning."""
    labels: dict[str, str] = {}
    for key, value in raw.items():
        try:
            validate_labels({key: value})
        except ValidationError as exc:
            warnings.append(f"label {str(key)[:40]!r} dropped: {exc.messages[0]}")
            continue
        labels[key] = value
    return labels


def memory_from_name(name: str) -> int | None:
    """MiB from a name that states its memory (nvidia-a100-80gb → 81920), else None."""
    match = re.search(r"(\d+)gb\b", name.lower())
    return int(match.group(1)) * 1024 if match else None
