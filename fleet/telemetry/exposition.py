"""Parse the Prometheus text format as dcgm-exporter (and the Fleetdeck agent) write it, into GPU readings.

Labels differ between deployments (pod labels under Kubernetes, a driver-version label, MIG instance labels,
HELP/TYPE lines or none), values may be integers or floats, and a line may be malformed. The parser keys
every series by its ``UUID`` label, keeps only the fields Fleetdeck stores, and counts malformed lines
rather than failing. It is on the ingest hot path, so label sets, which repeat exactly from one scrape to the
next, are parsed once and cached.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

# dcgm-exporter metric name → GpuReading attribute. Units are dcgm-exporter's: MiB, W, °C, MHz, mJ.
FIELDS: dict[str, str] = {
    "DCGM_FI_DEV_GPU_UTIL": "util_pct",
    "DCGM_FI_DEV_FB_USED": "mem_used_mib",
    "DCGM_FI_DEV_FB_FREE": "mem_free_mib",
    "DCGM_FI_DEV_FB_RESERVED": "mem_reserved_mib",
    "DCGM_FI_DEV_POWER_USAGE": "power_w",
    "DCGM_FI_DEV_POWER_MGMT_LIMIT": "power_limit_w",
    "DCGM_FI_DEV_GPU_TEMP": "temp_c",
    "DCGM_FI_DEV_SM_CLOCK": "sm_clock_mhz",
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": "energy_mj",
    "DCGM_FI_DEV_XID_ERRORS": "xid",
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": "ecc_sbe",
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": "ecc_dbe",
    "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL": "ecc_sbe_agg",
    "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL": "ecc_dbe_agg",
    # Published by the Fleetdeck agent when NVML reports a GPU as lost (dcgm-exporter has no such series).
    "fleetdeck_agent_gpu_lost": "lost",
}
# Other dcgm-exporter fields of the default and DCP sets: known well-formed names, skipped without checks.
KNOWN_UNSTORED = frozenset(
    {
        "DCGM_FI_DEV_MEM_CLOCK",
        "DCGM_FI_DEV_MEMORY_TEMP",
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
        "DCGM_FI_DEV_MEM_COPY_UTIL",
        "DCGM_FI_DEV_ENC_UTIL",
        "DCGM_FI_DEV_DEC_UTIL",
        "DCGM_FI_DEV_FB_TOTAL",
        "DCGM_FI_DEV_FB_USED_PERCENT",
        "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL",
        "DCGM_FI_DEV_VGPU_LICENSE_STATUS",
        "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
        "DCGM_FI_DEV_ROW_REMAP_FAILURE",
        "DCGM_FI_DEV_PSTATE",
        "DCGM_FI_DEV_SLOWDOWN_TEMP",
        "DCGM_FI_DEV_COUNT",
        "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS",
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
        "DCGM_FI_PROF_DRAM_ACTIVE",
        "DCGM_FI_PROF_PCIE_TX_BYTES",
        "DCGM_FI_PROF_PCIE_RX_BYTES",
    }
)
# Per-MIG-instance series (labels GPU_I_ID / GPU_I_PROFILE) whose values add up to the whole GPU's.
MIG_SUMMED = frozenset({"mem_used_mib", "mem_free_mib", "mem_reserved_mib"})
METRIC_NAME_RE = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
LABEL_RE = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')
MAX_CACHED_LABEL_SETS = 200_000
MAX_REPORTED_ERRORS = 20


@dataclass
class GpuReading:
    """One GPU's values from one scrape (None where the exporter did not report a field)."""

    uuid: str
    index: int | None = None
    model_name: str = ""
    hostname: str = ""
    driver_version: str = ""
    util_pct: float | None = None
    mem_used_mib: float | None = None
    mem_free_mib: float | None = None
    mem_reserved_mib: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    temp_c: float | None = None
    sm_clock_mhz: float | None = None
    energy_mj: float | None = None
    xid: float | None = None
    ecc_sbe: float | None = None
    ecc_dbe: float | None = None
    ecc_sbe_agg: float | None = None
    ecc_dbe_agg: float | None = None
    lost: float | None = None
    mig_instances: dict[str, dict[str, float]] = field(default_factory=dict)
    # The profile of each MIG instance (GPU_I_ID → GPU_I_PROFILE, e.g. "1" → "3g.40gb"), for fleet.slices.
    mig_profiles: dict[str, str] = field(default_factory=dict)

    @property
    def memory_total_mib(self) -> float | None:
        """Framebuffer size as the exporter reports it: used + free (+ reserved where given)."""
        if self.mem_used_mib is None or self.mem_free_mib is None:
            return None
        return self.mem_used_mib + self.mem_free_mib + (self.mem_reserved_mib or 0.0)


@dataclass
class Exposition:
    """The result of parsing one scrape."""

    readings: dict[str, GpuReading]
    series: int = 0
    malformed: int = 0
    errors: list[str] = field(default_factory=list)

    def _bad(self, lineno: int, reason: str, line: str) -> None:
        self.malformed += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(f"line {lineno}: {reason}: {line[:120]!r}")


@dataclass(frozen=True)
class _SeriesKey:
    uuid: str
    index: int | None
    mig_instance: str | None
    mig_profile: str | None
    model_name: str
    hostname: str
    driver_version: str


_label_cache: dict[str, _SeriesKey | str] = {}


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    return value.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")


def _series_key(labels: str) -> _SeriesKey | str:
    """The GPU a label set names, or a string saying why it names none (cached per distinct label set)."""
    cached = _label_cache.get(labels)
    if cached is not None:
        return cached
    parsed: dict[str, str] = {}
    pos = 0
    while pos < len(labels):
        match = LABEL_RE.match(labels, pos)
        if match is None:
            result: _SeriesKey | str = "unparseable labels"
            break
        parsed[match.group(1)] = _unescape(match.group(2))
        pos = match.end()
    else:
        result = labels_series_key(parsed)
    if len(_label_cache) >= MAX_CACHED_LABEL_SETS:
        _label_cache.clear()
    _label_cache[labels] = result
    return result


def labels_series_key(labels: dict[str, str]) -> _SeriesKey | str:
    """The GPU a series' labels name, or a string saying why they name none (shared by scrape and remote-write)."""
    uuid = labels.get("UUID", "")
    gpu = labels.get("gpu", "")
    if not uuid and not gpu:
        return "no UUID label"
    if gpu and not gpu.isdigit():
        return "gpu label is not an index"
    return _SeriesKey(
        uuid=uuid,
        index=int(gpu) if gpu else None,
        mig_instance=labels.get("GPU_I_ID"),
        mig_profile=labels.get("GPU_I_PROFILE"),
        model_name=labels.get("modelName", ""),
        hostname=labels.get("Hostname", ""),
        driver_version=labels.get("DCGM_FI_DRIVER_VERSION", ""),
    )


def reading_new(key: _SeriesKey) -> GpuReading:
    """An empty reading for the GPU a series key names."""
    return GpuReading(
        uuid=key.uuid,
        index=key.index,
        model_name=key.model_name,
        hostname=key.hostname,
        driver_version=key.driver_version,
    )


def reading_set(reading: GpuReading, key: _SeriesKey, attr: str, value: float) -> None:
    """Put one series' value into a reading (a MIG instance's framebuffer values add up to the GPU's)."""
    if key.mig_instance is None:
        reading.__dict__[attr] = value
        return
    instance = reading.mig_instances.setdefault(key.mig_instance, {})
    if key.mig_profile:
        reading.mig_profiles[key.mig_instance] = key.mig_profile
    previous = instance.get(attr, 0.0)
    instance[attr] = value
    # dcgm-exporter repeats device-wide fields (power, temperature, clocks) on every instance's series;
    # only framebuffer values are per instance and add up to the GPU's (a value given again replaces its part).
    if attr in MIG_SUMMED:
        reading.__dict__[attr] = (reading.__dict__[attr] or 0.0) + value - previous
    else:
        reading.__dict__[attr] = value


def parse_exposition(text: str) -> Exposition:
    """Parse one scrape into readings keyed by GPU UUID; malformed lines are counted, listed and skipped."""
    result = Exposition(readings={})
    readings = result.readings
    fields = FIELDS
    cache = _label_cache
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line or line[0] == "#":
            continue
        brace = line.find("{")
        name = line[:brace]
        attr = fields.get(name) if brace > 0 else None
        close = line.rfind("}")
        if attr is None and name in KNOWN_UNSTORED and close > brace:
            continue
        if attr is None or close < brace:
            _check_other_line(result, lineno, line, brace, close)
            continue
        try:
            # The common shape is `...} 42`; float() ignores the surrounding blank.
            value = float(line[close + 1 :])
        except ValueError:
            value = _value_with_timestamp(result, lineno, line, close)
            if value is None:
                continue
        labels = line[brace + 1 : close]
        key = cache.get(labels) or _series_key(labels)
        if key.__class__ is str:
            result._bad(lineno, key, line)
            continue
        result.series += 1
        if value != value or value == math.inf or value == -math.inf:
            continue  # exporters write NaN for "no data"; store nothing rather than a fake value
        reading_key = key.uuid or f"#{key.index}"  # a GPU lost before it was ever read has no UUID
        reading = readings.get(reading_key)
        if reading is None:
            reading = readings[reading_key] = reading_new(key)
        if key.mig_instance is None:
            reading.__dict__[attr] = value
        else:
            reading_set(reading, key, attr, value)
    return result


def _value_with_timestamp(result: Exposition, lineno: int, line: str, close: int) -> float | None:
    """The value of a series line written as `value timestamp`, or None (and a malformed count) if bad."""
    rest = line[close + 1 :].split()
    if len(rest) not in (1, 2):
        result._bad(lineno, "expected a value (and optional timestamp) after the labels", line)
        return None
    try:
        if len(rest) == 2:
            int(rest[1])
        return float(rest[0])
    except ValueError:
        result._bad(lineno, "value is not a number", line)
        return None


def _check_other_line(result: Exposition, lineno: int, line: str, brace: int, close: int) -> None:
    """Validate a line that is not a stored series: count it if it is malformed, else ignore it."""
    if not line.strip():
        return
    if brace < 0:
        # A series without labels (an exporter's own counters): fine if it is `name value`.
        parts = line.split()
        if len(parts) not in (2, 3) or not METRIC_NAME_RE.fullmatch(parts[0]) or not _is_number(parts[1]):
            result._bad(lineno, "not 'name value'", line)
    elif close < brace:
        result._bad(lineno, "unclosed label set", line)
    elif not METRIC_NAME_RE.fullmatch(line, 0, brace):
        result._bad(lineno, "invalid metric name", line)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
