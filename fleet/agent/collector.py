"""Read every GPU through an NVML object (pynvml, or a fake with its interface) into GpuReadings."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pynvml

from fleet.agent import exposition as m
from fleet.agent.readings import GpuReading, MigInstanceReading

logger = logging.getLogger(__name__)

INIT_RETRY_INTERVAL_S = 10.0
MIB = 1024 * 1024
MW_PER_W = 1000
MAX_XID_EVENTS_PER_COLLECT = 1000

# After these NVML as a whole is unusable until initialised again (a driver upgrade without a reboot gives
# LIB_RM_VERSION_MISMATCH).
NVML_DOWN_CODES = frozenset(
    {
        pynvml.NVML_ERROR_UNINITIALIZED,
        pynvml.NVML_ERROR_DRIVER_NOT_LOADED,
        pynvml.NVML_ERROR_LIBRARY_NOT_FOUND,
        pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH,
    }
)
# The device or the installed library does not have this field: leave it out, it is not an error.
ABSENT_CODES = frozenset({pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_FUNCTION_NOT_FOUND})
# nvmlDeviceGetMemoryInfo_v2 is missing from drivers older than R510.
MEMORY_V2_MISSING_CODES = frozenset({pynvml.NVML_ERROR_FUNCTION_NOT_FOUND, pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH})


class NvmlUnavailable(Exception):
    """NVML cannot be used now (no library, no driver, or it failed); str() says why."""


class _NvmlDown(Exception):
    pass


class _GpuLost(Exception):
    pass


@dataclass
class _Device:
    handle: Any
    uuid: str
    model_name: str
    pci_bus_id: str
    xid_registered: bool = False


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _watts(milliwatts: int) -> float:
    return milliwatts / MW_PER_W


def _first(value_and_period: list[int]) -> int:
    return int(value_and_period[0])


# Fields read with one NVML call per device: (metric, pynvml function, arguments after the handle, convert).
SCALAR_FIELDS: tuple[tuple[str, str, tuple[int, ...], Callable[[Any], int | float]], ...] = (
    (m.SM_CLOCK, "nvmlDeviceGetClockInfo", (pynvml.NVML_CLOCK_SM,), int),
    (m.MEM_CLOCK, "nvmlDeviceGetClockInfo", (pynvml.NVML_CLOCK_MEM,), int),
    (m.GPU_TEMP, "nvmlDeviceGetTemperature", (pynvml.NVML_TEMPERATURE_GPU,), int),
    (m.POWER_USAGE, "nvmlDeviceGetPowerUsage", (), _watts),
    (m.TOTAL_ENERGY_CONSUMPTION, "nvmlDeviceGetTotalEnergyConsumption", (), int),
    (m.PCIE_REPLAY_COUNTER, "nvmlDeviceGetPcieReplayCounter", (), int),
    (m.ENC_UTIL, "nvmlDeviceGetEncoderUtilization", (), _first),
    (m.DEC_UTIL, "nvmlDeviceGetDecoderUtilization", (), _first),
    (
        m.ECC_SBE_VOL_TOTAL,
        "nvmlDeviceGetTotalEccErrors",
        (pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, pynvml.NVML_VOLATILE_ECC),
        int,
    ),
    (
        m.ECC_DBE_VOL_TOTAL,
        "nvmlDeviceGetTotalEccErrors",
        (pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_VOLATILE_ECC),
        int,
    ),
    (
        m.ECC_SBE_AGG_TOTAL,
        "nvmlDeviceGetTotalEccErrors",
        (pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, pynvml.NVML_AGGREGATE_ECC),
        int,
    ),
    (
        m.ECC_DBE_AGG_TOTAL,
        "nvmlDeviceGetTotalEccErrors",
        (pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_AGGREGATE_ECC),
        int,
    ),
    (m.POWER_MGMT_LIMIT, "nvmlDeviceGetEnforcedPowerLimit", (), _watts),
)


def _mig_profile(mig_device_name: str) -> str:
    # NVML names a MIG device "<GPU name> MIG <profile>", e.g. "NVIDIA A100-SXM4-40GB MIG 1g.5gb".
    _, _, profile = mig_device_name.rpartition(" MIG ")
    return profile or mig_device_name


class Collector:
    """Reads every GPU through an injected NVML object; survives lost GPUs and a missing or failing driver.

    ``nvml`` is the pynvml module (default) or any object with its functions, such as
    ``devtools.fake_nvml.FakeNvml``; errors must be pynvml.NVMLError. Safe to call from several threads.
    """

    def __init__(
        self,
        nvml: Any = pynvml,
        *,
        hostname: str | None = None,
        init_retry_interval_s: float = INIT_RETRY_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.nvml = nvml
        self.hostname = hostname or socket.gethostname()
        self.driver_version: str | None = None
        self.unavailable_reason: str | None = None
        self._init_retry_interval_s = init_retry_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._initialized = False
        self._next_init_at = float("-inf")
        self._event_set: Any = None
        self._devices: dict[int, _Device] = {}
        self._last_seen: dict[int, _Device] = {}  # outlives re-initialisation, to name a GPU once it is lost
        self._last_xid: dict[str, int] = {}
        self._lost: set[int] = set()
        self._memory_v2 = True

    # --- lifecycle ------------------------------------------------------------------------------------------

    def collect(self) -> list[GpuReading]:
        """One reading per GPU; raises NvmlUnavailable when NVML cannot be used (retried on later calls)."""
        with self._lock:
            self._ensure_initialized()
            try:
                return self._collect()
            except _NvmlDown as exc:
                self._shutdown(reason=f"NVML stopped working: {exc}")
                raise NvmlUnavailable(self.unavailable_reason) from None

    def close(self) -> None:
        """Release NVML (the event set and the library reference)."""
        with self._lock:
            if self._initialized:
                self._shutdown(reason="closed")

    def _ensure_initialized(self) -> None:
        if self._initialized:
            return
        now = self._clock()
        if now < self._next_init_at:
            raise NvmlUnavailable(self.unavailable_reason)
        try:
            self.nvml.nvmlInit()
        except pynvml.NVMLError as exc:
            self._next_init_at = now + self._init_retry_interval_s
            reason = f"nvmlInit failed: {exc}"
            if reason != self.unavailable_reason:
                logger.warning("NVML unavailable (%s); retrying every %.0f s", reason, self._init_retry_interval_s)
            self.unavailable_reason = reason
            raise NvmlUnavailable(reason) from None
        self._initialized = True
        try:
            self.driver_version = _text(self.nvml.nvmlSystemGetDriverVersion())
        except pynvml.NVMLError as exc:
            self._shutdown(reason=f"nvmlSystemGetDriverVersion failed: {exc}")
            self._next_init_at = now + self._init_retry_interval_s
            raise NvmlUnavailable(self.unavailable_reason) from None
        try:
            self._event_set = self.nvml.nvmlEventSetCreate()
        except pynvml.NVMLError as exc:
            logger.warning("XID events unavailable: nvmlEventSetCreate failed: %s", exc)
            self._event_set = None
        if self.unavailable_reason is not None:
            logger.info("NVML available again (driver %s)", self.driver_version)
        self.unavailable_reason = None

    def _shutdown(self, *, reason: str) -> None:
        if reason != "closed" and reason != self.unavailable_reason:
            logger.warning("NVML unavailable (%s)", reason)
        self.unavailable_reason = reason
        # Best effort: with the driver gone these calls fail too, and there is nothing more to release.
        if self._event_set is not None:
            with contextlib.suppress(pynvml.NVMLError):
                self.nvml.nvmlEventSetFree(self._event_set)
        with contextlib.suppress(pynvml.NVMLError):
            self.nvml.nvmlShutdown()
        self._event_set = None
        self._devices.clear()
        self._initialized = False

    # --- collection -----------------------------------------------------------------------------------------

    def _collect(self) -> list[GpuReading]:
        try:
            count = self.nvml.nvmlDeviceGetCount()
        except pynvml.NVMLError as exc:
            raise _NvmlDown(f"nvmlDeviceGetCount: {exc}") from None
        self._drain_xid_events()
        return [self._read_gpu(index) for index in range(count)]

    def _absorb(self, exc: pynvml.NVMLError, errors: list[str], what: str) -> None:
        """Raise for a lost GPU or a dead NVML; otherwise note the error unless the field is just absent."""
        if exc.value == pynvml.NVML_ERROR_GPU_IS_LOST:
            raise _GpuLost from None
        if exc.value in NVML_DOWN_CODES:
            raise _NvmlDown(f"{what}: {exc}") from None
        if exc.value not in ABSENT_CODES:
            errors.append(f"{what}: {exc}")

    def _call(self, errors: list[str], what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args), or None when the field is absent or failed (noted in errors)."""
        try:
            return fn(*args)
        except pynvml.NVMLError as exc:
            self._absorb(exc, errors, what)
            return None

    def _device(self, index: int, errors: list[str]) -> _Device:
        device = self._devices.get(index)
        if device is not None:
            return device
        nvml = self.nvml
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
        except pynvml.NVMLError as exc:
            self._absorb(exc, errors, "nvmlDeviceGetHandleByIndex")
            # Without a handle there is nothing to read: report it like a lost GPU.
            raise _GpuLost from None
        uuid = self._call(errors, "nvmlDeviceGetUUID", nvml.nvmlDeviceGetUUID, handle)
        name = self._call(errors, "nvmlDeviceGetName", nvml.nvmlDeviceGetName, handle)
        pci = self._call(errors, "nvmlDeviceGetPciInfo", nvml.nvmlDeviceGetPciInfo, handle)
        device = _Device(
            handle=handle,
            uuid=_text(uuid) if uuid else "",
            model_name=_text(name) if name else "",
            pci_bus_id=_text(pci.busId) if pci is not None else "",
        )
        if self._event_set is not None:
            try:
                nvml.nvmlDeviceRegisterEvents(handle, pynvml.nvmlEventTypeXidCriticalError, self._event_set)
                device.xid_registered = True
            except pynvml.NVMLError as exc:
                self._absorb(exc, errors, "nvmlDeviceRegisterEvents(XID)")
        self._devices[index] = self._last_seen[index] = device
        return device

    def _read_gpu(self, index: int) -> GpuReading:
        errors: list[str] = []
        try:
            device = self._device(index, errors)
            reading = GpuReading(index, device.uuid, device.model_name, device.pci_bus_id, errors=errors)
            self._read_fields(device, reading)
        except _GpuLost:
            seen = self._last_seen.get(index)
            if index not in self._lost:
                logger.warning("GPU %d (%s) is lost", index, seen.uuid if seen else "UUID unknown")
                self._lost.add(index)
            if seen is None:
                return GpuReading(index, "", "", lost=True, errors=errors)
            return GpuReading(index, seen.uuid, seen.model_name, seen.pci_bus_id, lost=True, errors=errors)
        if index in self._lost:
            logger.info("GPU %d (%s) is back", index, device.uuid)
            self._lost.discard(index)
        return reading

    def _read_fields(self, device: _Device, reading: GpuReading) -> None:
        nvml, handle, errors, fields = self.nvml, device.handle, reading.errors, reading.fields
        for metric, function, args, convert in SCALAR_FIELDS:
            value = self._call(errors, f"{metric}: {function}", getattr(nvml, function), handle, *args)
            if value is not None:
                fields[metric] = convert(value)
        rates = self._call(errors, "nvmlDeviceGetUtilizationRates", nvml.nvmlDeviceGetUtilizationRates, handle)
        if rates is not None:
            fields[m.GPU_UTIL] = int(rates.gpu)
            fields[m.MEM_COPY_UTIL] = int(rates.memory)
        if device.xid_registered:
            fields[m.XID_ERRORS] = self._last_xid.get(device.uuid, 0)
        fields.update(self._read_memory(handle, errors))
        rows = self._call(errors, "nvmlDeviceGetRemappedRows", nvml.nvmlDeviceGetRemappedRows, handle)
        if rows is not None:
            correctable, uncorrectable, _pending, failure = rows
            fields[m.CORRECTABLE_REMAPPED_ROWS] = int(correctable)
            fields[m.UNCORRECTABLE_REMAPPED_ROWS] = int(uncorrectable)
            fields[m.ROW_REMAP_FAILURE] = int(bool(failure))
        mode = self._call(errors, "nvmlDeviceGetMigMode", nvml.nvmlDeviceGetMigMode, handle)
        if mode is not None:
            enabled = mode[0] == pynvml.NVML_DEVICE_MIG_ENABLE
            fields[m.MIG_MODE] = int(enabled)
            if enabled:
                reading.mig_instances = self._read_mig_instances(handle, errors)

    def _read_memory(self, handle: Any, errors: list[str]) -> dict[str, int]:
        nvml = self.nvml
        if self._memory_v2:
            try:
                memory = nvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2)
            except TypeError:  # a pynvml too old to take version=
                self._memory_v2 = False
            except pynvml.NVMLError as exc:
                if exc.value not in MEMORY_V2_MISSING_CODES:
                    self._absorb(exc, errors, "nvmlDeviceGetMemoryInfo")
                    return {}
                self._memory_v2 = False
            else:
                return {
                    m.FB_FREE: memory.free // MIB,
                    m.FB_USED: memory.used // MIB,
                    m.FB_RESERVED: memory.reserved // MIB,
                }
        memory = self._call(errors, "nvmlDeviceGetMemoryInfo", nvml.nvmlDeviceGetMemoryInfo, handle)
        if memory is None:
            return {}
        # The v1 structure counts reserved memory as used and has no reserved field.
        return {m.FB_FREE: memory.free // MIB, m.FB_USED: memory.used // MIB}

    def _read_mig_instances(self, handle: Any, errors: list[str]) -> list[MigInstanceReading]:
        nvml = self.nvml
        count = self._call(errors, "nvmlDeviceGetMaxMigDeviceCount", nvml.nvmlDeviceGetMaxMigDeviceCount, handle)
        instances: dict[int, MigInstanceReading] = {}
        for mig_index in range(count or 0):
            try:
                mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, mig_index)
            except pynvml.NVMLError as exc:
                if exc.value == pynvml.NVML_ERROR_NOT_FOUND:  # an empty slot
                    continue
                self._absorb(exc, errors, "nvmlDeviceGetMigDeviceHandleByIndex")
                continue
            gi = self._call(errors, "nvmlDeviceGetGpuInstanceId", nvml.nvmlDeviceGetGpuInstanceId, mig)
            # Compute instances of one GPU instance share its memory, and dcgm-exporter labels by GPU
            # instance only: keep the first so no two series carry the same labels.
            if gi is None or gi in instances:
                continue
            ci = self._call(errors, "nvmlDeviceGetComputeInstanceId", nvml.nvmlDeviceGetComputeInstanceId, mig)
            name = self._call(errors, "nvmlDeviceGetName", nvml.nvmlDeviceGetName, mig)
            uuid = self._call(errors, "nvmlDeviceGetUUID", nvml.nvmlDeviceGetUUID, mig)
            instances[gi] = MigInstanceReading(
                gpu_instance_id=int(gi),
                compute_instance_id=int(ci) if ci is not None else 0,
                profile=_mig_profile(_text(name)) if name else "",
                uuid=_text(uuid) if uuid else "",
                fields=self._read_memory(mig, errors),
            )
        return sorted(instances.values(), key=lambda instance: instance.gpu_instance_id)

    def _drain_xid_events(self) -> None:
        if self._event_set is None:
            return
        for _ in range(MAX_XID_EVENTS_PER_COLLECT):
            try:
                event = self.nvml.nvmlEventSetWait(self._event_set, 0)
            except pynvml.NVMLError as exc:
                if exc.value in NVML_DOWN_CODES:
                    raise _NvmlDown(f"nvmlEventSetWait: {exc}") from None
                if exc.value != pynvml.NVML_ERROR_TIMEOUT:
                    logger.warning("reading XID events failed: %s", exc)
                return
            if not event.eventType & pynvml.nvmlEventTypeXidCriticalError:
                continue
            try:
                uuid = _text(self.nvml.nvmlDeviceGetUUID(event.device))
            except pynvml.NVMLError:
                continue  # the GPU that raised it is gone; it is reported as lost instead
            logger.warning("XID %d on GPU %s", event.eventData, uuid)
            self._last_xid[uuid] = int(event.eventData)
