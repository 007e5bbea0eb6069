"""Real GPU and instance-type facts used by the demo seed and the simulator.

Sources (see ../shared/fixtures/README.md for provenance):
- GPU memory and counts of AWS types: EC2 ``DescribeInstanceTypes`` ``GpuInfo`` as moto ships it
  (moto ``instance_types.json``); a test checks these rows against that data.
- GCP machine types with built-in GPUs: the GCE ``machineTypes`` ``accelerators`` field.
- Model names: as NVML / nvidia-smi report them (telegraf and nvidia_gpu_exporter captures).
- Power limits: nvidia-smi captures and NVIDIA product briefs.
- MIG compute slices: NVIDIA's MIG user guide, "Supported MIG profiles" (A100/H100/H200/B200: 7; A30: 4).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fleet.choices import ProviderKind


@dataclass(frozen=True)
class GpuSpec:
    """One GPU model as NVML reports it."""

    key: str
    nvml_name: str
    memory_mib: int
    power_limit_w: int


GPU_SPECS: dict[str, GpuSpec] = {
    spec.key: spec
    for spec in (
        GpuSpec("H100", "NVIDIA H100 80GB HBM3", 81920, 700),
        GpuSpec("H200", "NVIDIA H200", 144384, 700),
        GpuSpec("B200", "NVIDIA B200", 183359, 1000),
        GpuSpec("A100-40GB", "NVIDIA A100-SXM4-40GB", 40960, 400),
        GpuSpec("A100-80GB", "NVIDIA A100-SXM4-80GB", 81920, 500),
        GpuSpec("A10G", "NVIDIA A10G", 22888, 300),
        GpuSpec("L4", "NVIDIA L4", 22888, 72),
        GpuSpec("L40S", "NVIDIA L40S", 45776, 350),
        GpuSpec("T4", "Tesla T4", 16384, 70),
    )
}


@dataclass(frozen=True)
class InstanceType:
    """A node shape: which provider offers it and the GPUs it carries."""

    name: str
    provider: ProviderKind
    gpu: str
    gpu_count: int


INSTANCE_TYPES: dict[str, InstanceType] = {
    it.name: it
    for it in (
        InstanceType("p5.48xlarge", ProviderKind.AWS, "H100", 8),
        InstanceType("p5e.48xlarge", ProviderKind.AWS, "H200", 8),
        InstanceType("p6-b200.48xlarge", ProviderKind.AWS, "B200", 8),
        InstanceType("p4d.24xlarge", ProviderKind.AWS, "A100-40GB", 8),
        InstanceType("p4de.24xlarge", ProviderKind.AWS, "A100-80GB", 8),
        InstanceType("g5.xlarge", ProviderKind.AWS, "A10G", 1),
        InstanceType("g5.12xlarge", ProviderKind.AWS, "A10G", 4),
        InstanceType("g5.48xlarge", ProviderKind.AWS, "A10G", 8),
        InstanceType("g6.xlarge", ProviderKind.AWS, "L4", 1),
        InstanceType("g6e.xlarge", ProviderKind.AWS, "L40S", 1),
        InstanceType("g4dn.xlarge", ProviderKind.AWS, "T4", 1),
        InstanceType("a2-highgpu-1g", ProviderKind.GCP, "A100-40GB", 1),
        InstanceType("a2-highgpu-8g", ProviderKind.GCP, "A100-40GB", 8),
        InstanceType("a2-ultragpu-8g", ProviderKind.GCP, "A100-80GB", 8),
        InstanceType("a3-highgpu-8g", ProviderKind.GCP, "H100", 8),
        InstanceType("g2-standard-4", ProviderKind.GCP, "L4", 1),
        InstanceType("g2-standard-48", ProviderKind.GCP, "L4", 4),
        # On-prem server shapes (no cloud type name; used as the node's instance_type for reference).
        InstanceType("dgx-h100", ProviderKind.ONPREM, "H100", 8),
        InstanceType("hgx-a100-80gb", ProviderKind.ONPREM, "A100-80GB", 8),
        InstanceType("l40s-4x", ProviderKind.ONPREM, "L40S", 4),
        InstanceType("t4-inference-2x", ProviderKind.ONPREM, "T4", 2),
    )
}

GPU_KEY_BY_NVML_NAME: dict[str, str] = {spec.nvml_name: spec.key for spec in GPU_SPECS.values()}


def gpu_key(nvml_name: str) -> str:
    """The catalogue key (``H100``) of a GPU model as NVML names it; the NVML name itself when it is unknown."""
    return GPU_KEY_BY_NVML_NAME.get(nvml_name, nvml_name)


# How many compute slices ("7g" is the whole GPU) MIG cuts a GPU into, by a word of its NVML name. A100, A800,
# H100, H800, H200, GH200 and B200 have 7; A30 has 4. Other GPUs have no MIG.
MIG_COMPUTE_SLICES: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(r"\b(?:GH200|[AHB][128]00)\b"), 7),
    (re.compile(r"\bA30\b"), 4),
)
# A GPU instance profile as NVML and dcgm-exporter's GPU_I_PROFILE name it: "3g.40gb", "1g.10gb+me",
# "1c.3g.40gb" (a compute instance of a 3g instance). The "Ng" is the instance's compute slices.
MIG_PROFILE_RE = re.compile(r"(?:[1-7]c\.)?([1-7])g\.[0-9]{1,4}gb(?:\+[a-z]{1,8})?")


def mig_slices_of(nvml_name: str) -> int | None:
    """The compute slices MIG cuts this GPU model into (7 on A100/H100/H200/B200, 4 on A30); None without MIG."""
    for pattern, slices in MIG_COMPUTE_SLICES:
        if pattern.search(nvml_name):
            return slices
    return None


def mig_profile_units(profile: str) -> int | None:
    """The compute slices of a MIG profile ("3g.40gb" → 3), or None when it is not a MIG profile name."""
    match = MIG_PROFILE_RE.fullmatch(profile)
    return int(match.group(1)) if match else None
