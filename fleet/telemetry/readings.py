"""Which parsed readings a poll accepts: values that fit their columns, at most a cap of GPUs per node."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings

from fleet.models import GPU
from fleet.telemetry.exposition import GpuReading
from fleet.telemetry.report import PollReport

# What the ingest may store, as the columns (or the integers the values become) can hold it.
MAX_GPU_INDEX = 1023  # NVML indexes count a host's GPUs from 0; far more than any machine has
UUID_MAX_LENGTH = GPU._meta.get_field("uuid").max_length
MODEL_MAX_LENGTH = GPU._meta.get_field("model").max_length
INTEGER_MAX = 2**31 - 1
REAL_MAX = 3.4e38
EXACT_INTEGER_MAX = float(2**53)  # counters become bigint XIDs and event counts
VALUE_RANGES: dict[str, tuple[float, float]] = {
    "power_w": (-REAL_MAX, REAL_MAX),  # real in the sample table
    "mem_used_mib": (-REAL_MAX, REAL_MAX),
    "power_limit_w": (0, INTEGER_MAX),  # GPU.power_limit_w: a non-negative integer
    "xid": (-EXACT_INTEGER_MAX, EXACT_INTEGER_MAX),
    "ecc_sbe": (-EXACT_INTEGER_MAX, EXACT_INTEGER_MAX),
    "ecc_dbe": (-EXACT_INTEGER_MAX, EXACT_INTEGER_MAX),
    "ecc_sbe_agg": (-EXACT_INTEGER_MAX, EXACT_INTEGER_MAX),
    "ecc_dbe_agg": (-EXACT_INTEGER_MAX, EXACT_INTEGER_MAX),
}


def _reading_fits(reading: GpuReading) -> bool:
    """Whether every value of a reading fits the column it is stored in (smallint values are clamped instead)."""
    if reading.index is not None and not 0 <= reading.index <= MAX_GPU_INDEX:
        return False
    if len(reading.uuid) > UUID_MAX_LENGTH or len(reading.model_name) > MODEL_MAX_LENGTH:
        return False
    if "\x00" in reading.uuid or "\x00" in reading.model_name:  # PostgreSQL text cannot hold NUL
        return False
    total = reading.memory_total_mib
    if total is not None and total > INTEGER_MAX:  # GPU.memory_mib of a GPU first seen here
        return False
    for attr, (low, high) in VALUE_RANGES.items():
        value = getattr(reading, attr)
        if value is not None and not low <= value <= high:
            return False
    return True


def readings_accept(node_id: int, readings: Iterable[GpuReading], report: PollReport) -> list[GpuReading]:
    """The readings of one scrape that fit their columns, at most TELEMETRY_MAX_GPUS_PER_NODE of them.

    The others are counted in ``report.samples_rejected`` and noted in ``report.warnings`` for the node.
    """
    readings = list(readings)
    fitting = [r for r in readings if _reading_fits(r)]
    cap = settings.TELEMETRY_MAX_GPUS_PER_NODE
    notes = []
    if len(fitting) < len(readings):
        skipped = len(readings) - len(fitting)
        notes.append(f"{skipped} sample{'s' if skipped > 1 else ''} skipped: values out of range")
    if len(fitting) > cap:
        notes.append(f"{len(readings)} GPUs reported; only {cap} kept (TELEMETRY_MAX_GPUS_PER_NODE)")
        fitting = fitting[:cap]
    report.samples_rejected += len(readings) - len(fitting)
    if notes:
        report.warnings[node_id] = "; ".join(notes)
    return fitting
