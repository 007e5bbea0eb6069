"""Render GPU readings in the Prometheus text format with dcgm-exporter's metric and label names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fleet.agent.readings import GpuReading

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class MetricSpec:
    """One exported metric: its name, Prometheus type and help text."""

    name: str
    type: str
    help: str


SM_CLOCK = "DCGM_FI_DEV_SM_CLOCK"
MEM_CLOCK = "DCGM_FI_DEV_MEM_CLOCK"
GPU_TEMP = "DCGM_FI_DEV_GPU_TEMP"
POWER_USAGE = "DCGM_FI_DEV_POWER_USAGE"
TOTAL_ENERGY_CONSUMPTION = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
PCIE_REPLAY_COUNTER = "DCGM_FI_DEV_PCIE_REPLAY_COUNTER"
GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"
MEM_COPY_UTIL = "DCGM_FI_DEV_MEM_COPY_UTIL"
ENC_UTIL = "DCGM_FI_DEV_ENC_UTIL"
DEC_UTIL = "DCGM_FI_DEV_DEC_UTIL"
XID_ERRORS = "DCGM_FI_DEV_XID_ERRORS"
FB_FREE = "DCGM_FI_DEV_FB_FREE"
FB_USED = "DCGM_FI_DEV_FB_USED"
FB_RESERVED = "DCGM_FI_DEV_FB_RESERVED"
ECC_SBE_VOL_TOTAL = "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL"
ECC_DBE_VOL_TOTAL = "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"
ECC_SBE_AGG_TOTAL = "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL"
ECC_DBE_AGG_TOTAL = "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL"
UNCORRECTABLE_REMAPPED_ROWS = "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS"
CORRECTABLE_REMAPPED_ROWS = "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS"
ROW_REMAP_FAILURE = "DCGM_FI_DEV_ROW_REMAP_FAILURE"
POWER_MGMT_LIMIT = "DCGM_FI_DEV_POWER_MGMT_LIMIT"
MIG_MODE = "DCGM_FI_DEV_MIG_MODE"
GPU_LOST = "fleetdeck_agent_gpu_lost"

FB_METRICS = frozenset({FB_FREE, FB_USED, FB_RESERVED})

# Types and help texts are dcgm-exporter's etc/default-counters.csv (ECC lines are commented out there, with
# these types). POWER_MGMT_LIMIT's type is that of the DataDog dcgm-exporter capture; MIG_MODE is DCGM's field
# name for NVML's MIG mode. Order follows default-counters.csv, as dcgm-exporter writes it.
METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(SM_CLOCK, "gauge", "SM clock frequency (in MHz)."),
    MetricSpec(MEM_CLOCK, "gauge", "Memory clock frequency (in MHz)."),
    MetricSpec(GPU_TEMP, "gauge", "GPU temperature (in C)."),
    MetricSpec(POWER_USAGE, "gauge", "Power draw (in W)."),
    MetricSpec(TOTAL_ENERGY_CONSUMPTION, "counter", "Total energy consumption since boot (in mJ)."),
    MetricSpec(PCIE_REPLAY_COUNTER, "counter", "Total number of PCIe retries."),
    MetricSpec(GPU_UTIL, "gauge", "GPU utilization (in %)."),
    MetricSpec(MEM_COPY_UTIL, "gauge", "Memory utilization (in %)."),
    MetricSpec(ENC_UTIL, "gauge", "Encoder utilization (in %)."),
    MetricSpec(DEC_UTIL, "gauge", "Decoder utilization (in %)."),
    MetricSpec(XID_ERRORS, "gauge", "Value of the last XID error encountered."),
    MetricSpec(FB_FREE, "gauge", "Framebuffer memory free (in MiB)."),
    MetricSpec(FB_USED, "gauge", "Framebuffer memory used (in MiB)."),
    MetricSpec(FB_RESERVED, "gauge", "Framebuffer memory reserved (in MiB)."),
    MetricSpec(ECC_SBE_VOL_TOTAL, "counter", "Total number of single-bit volatile ECC errors."),
    MetricSpec(ECC_DBE_VOL_TOTAL, "counter", "Total number of double-bit volatile ECC errors."),
    MetricSpec(ECC_SBE_AGG_TOTAL, "counter", "Total number of single-bit persistent ECC errors."),
    MetricSpec(ECC_DBE_AGG_TOTAL, "counter", "Total number of double-bit persistent ECC errors."),
    MetricSpec(UNCORRECTABLE_REMAPPED_ROWS, "counter", "Number of remapped rows for uncorrectable errors"),
    MetricSpec(CORRECTABLE_REMAPPED_ROWS, "counter", "Number of remapped rows for correctable errors"),
    MetricSpec(ROW_REMAP_FAILURE, "gauge", "Whether remapping of rows has failed"),
    MetricSpec(POWER_MGMT_LIMIT, "gauge", "Power management limit (in W)."),
    MetricSpec(MIG_MODE, "gauge", "MIG mode of the GPU (1 = enabled)."),
    MetricSpec(
        GPU_LOST, "gauge", "1 when NVML reports the GPU lost (NVML_ERROR_GPU_IS_LOST); its other series vanish."
    ),
)
METRICS_BY_NAME: dict[str, MetricSpec] = {spec.name: spec for spec in METRICS}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_value(value: float) -> str:
    # dcgm-exporter prints integer fields as integers and float fields with %f (e.g. power "8.969000").
    if isinstance(value, float):
        return f"{value:f}"
    return str(int(value))


def render_metrics(readings: Sequence[GpuReading], hostname: str, *, driver_version: str | None = None) -> str:
    """The /metrics body for these readings, in dcgm-exporter's names, labels, units and order.

    Labels are dcgm-exporter's: gpu, UUID, pci_bus_id, device, modelName, then GPU_I_PROFILE and GPU_I_ID on
    a MIG instance, then Hostname and DCGM_FI_DRIVER_VERSION. As dcgm-exporter does, a GPU with MIG instances
    has no whole-GPU series: every field is written once per GPU instance, device-wide values repeated and
    framebuffer values the instance's own.
    """
    lines: dict[str, list[str]] = {spec.name: [] for spec in METRICS}
    suffix = f'Hostname="{_escape(hostname)}"'
    if driver_version:
        suffix += f',DCGM_FI_DRIVER_VERSION="{_escape(driver_version)}"'
    for reading in readings:
        prefix = f'gpu="{reading.index}",UUID="{_escape(reading.uuid)}",'
        if reading.pci_bus_id:
            prefix += f'pci_bus_id="{_escape(reading.pci_bus_id)}",'
        prefix += f'device="nvidia{reading.index}",modelName="{_escape(reading.model_name)}",'
        lines[GPU_LOST].append(f"{GPU_LOST}{{{prefix}{suffix}}} {int(reading.lost)}")
        if reading.lost:
            continue
        if not reading.mig_instances:
            labels = prefix + suffix
            for name, value in reading.fields.items():
                lines[name].append(f"{name}{{{labels}}} {_format_value(value)}")
            continue
        device_wide = {name: value for name, value in reading.fields.items() if name not in FB_METRICS}
        for instance in reading.mig_instances:
            labels = (
                f'{prefix}GPU_I_PROFILE="{_escape(instance.profile)}",GPU_I_ID="{instance.gpu_instance_id}",{suffix}'
            )
            for name, value in (device_wide | instance.fields).items():
                lines[name].append(f"{name}{{{labels}}} {_format_value(value)}")
    out: list[str] = []
    for spec in METRICS:
        if lines[spec.name]:
            out.append(f"# HELP {spec.name} {spec.help}")
            out.append(f"# TYPE {spec.name} {spec.type}")
            out.extend(lines[spec.name])
    return "\n".join(out) + "\n" if out else ""
