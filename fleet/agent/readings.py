"""What one collection from NVML yields: a reading per GPU, keyed by dcgm-exporter field names."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MigInstanceReading:
    """One MIG GPU instance of a GPU: its identity and its own framebuffer fields (MiB)."""

    gpu_instance_id: int
    compute_instance_id: int
    profile: str
    uuid: str
    fields: dict[str, int | float] = field(default_factory=dict)


@dataclass
class GpuReading:
    """One GPU at one moment: identity, the fields NVML supports (dcgm-exporter names and units), MIG, errors.

    ``fields`` holds only what the device reported; a field NVML calls NOT_SUPPORTED is simply absent.
    A lost GPU (NVML_ERROR_GPU_IS_LOST) has ``lost`` set, no fields, and the identity last seen (or "").
    """

    index: int
    uuid: str
    model_name: str
    pci_bus_id: str = ""
    lost: bool = False
    fields: dict[str, int | float] = field(default_factory=dict)
    mig_instances: list[MigInstanceReading] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
