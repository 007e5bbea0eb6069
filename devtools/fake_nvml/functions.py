"""The NVML functions of the fake (pynvml's names and signatures), as a mixin of ``FakeNvml``."""

from __future__ import annotations

import pynvml

from devtools.fake_nvml.devices import FakeEventData, FakeEventSet, FakeGpu, FakeMigDevice, nvml_error
from devtools.fake_nvml.models import MAX_MIG_DEVICES, MIB, MW_PER_W, SAMPLING_PERIOD_US


class NvmlFunctions:
    """pynvml's functions over ``self.gpus``; ``FakeNvml`` supplies the state and the checks they use."""

    # --- NVML: library and system ---------------------------------------------------------------------------

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names
        with self._lock:
            if self._driver_error is not None:
                raise nvml_error(self._driver_error)
            self._refcount += 1

    def nvmlShutdown(self) -> None:  # noqa: N802
        with self._lock:
            self._check_init()
            self._refcount -= 1

    def nvmlSystemGetDriverVersion(self) -> str:  # noqa: N802
        with self._lock:
            self._check_init()
            return self.driver_version

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        with self._lock:
            self._check_init()
            return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:  # noqa: N802
        with self._lock:
            self._check_init()
            if not 0 <= index < len(self.gpus):
                raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            return self._gpu(self.gpus[index], "nvmlDeviceGetHandleByIndex")

    # --- NVML: identity -------------------------------------------------------------------------------------

    def nvmlDeviceGetName(self, handle) -> str:  # noqa: N802
        with self._lock:
            target = self._gpu(handle, "nvmlDeviceGetName")
            if isinstance(handle, FakeMigDevice):
                return f"{target.model.nvml_name} MIG {handle.profile}"
            return target.model.nvml_name

    def nvmlDeviceGetUUID(self, handle) -> str:  # noqa: N802
        with self._lock:
            target = self._gpu(handle, "nvmlDeviceGetUUID")
            return handle.uuid if isinstance(handle, FakeMigDevice) else target.uuid

    def nvmlDeviceGetPciInfo(self, handle) -> pynvml.nvmlPciInfo_t:  # noqa: N802
        with self._lock:
            target = self._gpu(handle, "nvmlDeviceGetPciInfo")
            info = pynvml.nvmlPciInfo_t()
            info.busId = target.pci_bus_id.encode()
            info.busIdLegacy = target.pci_bus_id[4:].encode()
            return info

    def nvmlDeviceGetIndex(self, handle) -> int:  # noqa: N802
        with self._lock:
            return self._gpu(handle, "nvmlDeviceGetIndex").index

    def nvmlDeviceGetMinorNumber(self, handle) -> int:  # noqa: N802
        with self._lock:
            return self._gpu(handle, "nvmlDeviceGetMinorNumber").index

    # --- NVML: readings -------------------------------------------------------------------------------------

    def nvmlDeviceGetMemoryInfo(self, handle, version: int | None = None):  # noqa: N802
        with self._lock:
            target = self._gpu(handle, "nvmlDeviceGetMemoryInfo")
            if isinstance(handle, FakeMigDevice):
                total, reserved, used = handle.memory_total_mib, 0, handle.memory_used_mib
            else:
                total, reserved = target.model.memory_total_mib, target.model.memory_reserved_mib
                used = target.memory_used_mib
            free = total - reserved - used
            if version:
                memory = pynvml.c_nvmlMemory_v2_t()
                memory.version = version
                memory.reserved = reserved * MIB
            else:
                # The v1 structure has no "reserved": NVML counts it as used.
                memory = pynvml.c_nvmlMemory_t()
                used += reserved
            memory.total, memory.used, memory.free = total * MIB, used * MIB, free * MIB
            return memory

    def nvmlDeviceGetUtilizationRates(self, handle) -> pynvml.c_nvmlUtilization_t:  # noqa: N802
        with self._lock:
            target = self._gpu(handle, "nvmlDeviceGetUtilizationRates")
            if target.mig_enabled:  # nvidia-smi shows gpu_util N/A on the MIG-mode A100 capture
                raise nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
            rates = pynvml.c_nvmlUtilization_t()
            rates.gpu = round(self._noisy(target.util_pct, 100))
            rates.memory = round(self._noisy(target.mem_util_pct, 100))
            return rates

    def nvmlDeviceGetEncoderUtilization(self, handle) -> list[int]:  # noqa: N802
        with self._lock:
            target = self._gpu(handle, "nvmlDeviceGetEncoderUtilization")
            if target.mig_enabled:
                raise nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
            return [round(target.enc_util_pct), SAMPLING_PERIOD_US]

    def nvmlDeviceGetDecoderUtilization(self, handle) -> list[int]:  # noqa: N802
        with self._lock:
            target = self._gpu(handle, "nvmlDeviceGetDecoderUtilization")
            if target.mig_enabled:
                raise nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
            return [round(target.dec_util_pct), SAMPLING_PERIOD_US]

    def nvmlDeviceGetPowerUsage(self, handle) -> int:  # noqa: N802
        with self._lock:
            target = self._gpu(handle, "nvmlDeviceGetPowerUsage")
            return round(self._noisy(target.power_w, target.model.power_limit_w) * MW_PER_W)

    def nvmlDeviceGetEnforcedPowerLimit(self, handle) -> int:  # noqa: N802
        with self._lock:
            return round(self._gpu(handle, "nvmlDeviceGetEnforcedPowerLimit").model.power_limit_w * MW_PER_W)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle) -> int:  # noqa: N802
        with self._lock:
            target = self._gpu(handle, "nvmlDeviceGetTotalEnergyConsumption")
            self._integrate_energy(target)
            return int(target.energy_mj)

    def nvmlDeviceGetTemperature(self, handle, sensor: int) -> int:  # noqa: N802
        with self._lock:
            target = self._gpu(handle, "nvmlDeviceGetTemperature")
            if sensor != pynvml.NVML_TEMPERATURE_GPU:
                raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            return round(self._noisy(target.temp_c, 120))

    def nvmlDeviceGetClockInfo(self, handle, clock_type: int) -> int:  # noqa: N802
        with self._lock:
            target = self._gpu(handle, "nvmlDeviceGetClockInfo")
            if clock_type in (pynvml.NVML_CLOCK_SM, pynvml.NVML_CLOCK_GRAPHICS):
                return target.sm_clock_mhz
            if clock_type == pynvml.NVML_CLOCK_MEM:
                return target.mem_clock_mhz
            raise nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)

    def nvmlDeviceGetTotalEccErrors(self, handle, error_type: int, counter_type: int) -> int:  # noqa: N802
        with self._lock:
            target = self._gpu(handle, "nvmlDeviceGetTotalEccErrors")
            corrected = error_type == pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED
            if counter_type == pynvml.NVML_VOLATILE_ECC:
                return target.ecc_sbe_volatile if corrected else target.ecc_dbe_volatile
            return target.ecc_sbe_aggregate if corrected else target.ecc_dbe_aggregate

    def nvmlDeviceGetPcieReplayCounter(self, handle) -> int:  # noqa: N802
        with self._lock:
            return self._gpu(handle, "nvmlDeviceGetPcieReplayCounter").pcie_replays

    def nvmlDeviceGetRemappedRows(self, handle) -> tuple[int, int, int, int]:  # noqa: N802
        with self._lock:
            target = self._gpu(handle, "nvmlDeviceGetRemappedRows")
            # remapped_rows is N/A on the T4 capture and on the MIG-mode A100 capture.
            if not target.model.row_remapping or target.mig_enabled:
                raise nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
            return (target.remapped_correctable, target.remapped_uncorrectable, 0, int(target.remap_failure))

    # --- NVML: MIG ------------------------------------------------------------------------------------------

    def nvmlDeviceGetMigMode(self, handle) -> list[int]:  # noqa: N802
        with self._lock:
            target = self._gpu(handle, "nvmlDeviceGetMigMode")
            if not target.model.mig_capable:
                raise nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
            mode = pynvml.NVML_DEVICE_MIG_ENABLE if target.mig_enabled else pynvml.NVML_DEVICE_MIG_DISABLE
            return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle) -> int:  # noqa: N802
        with self._lock:
            target = self._gpu(handle, "nvmlDeviceGetMaxMigDeviceCount")
            if not target.model.mig_capable:
                raise nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
            return MAX_MIG_DEVICES

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle, index: int) -> FakeMigDevice:  # noqa: N802
        with self._lock:
            target = self._gpu(handle, "nvmlDeviceGetMigDeviceHandleByIndex")
            if not target.mig_enabled or not 0 <= index < MAX_MIG_DEVICES:
                raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            if index >= len(target.mig_devices):
                raise nvml_error(pynvml.NVML_ERROR_NOT_FOUND)
            return target.mig_devices[index]

    def nvmlDeviceIsMigDeviceHandle(self, handle) -> bool:  # noqa: N802
        with self._lock:
            self._gpu(handle, "nvmlDeviceIsMigDeviceHandle")
            return isinstance(handle, FakeMigDevice)

    def nvmlDeviceGetGpuInstanceId(self, handle) -> int:  # noqa: N802
        with self._lock:
            self._gpu(handle, "nvmlDeviceGetGpuInstanceId")
            if not isinstance(handle, FakeMigDevice):
                raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            return handle.gpu_instance_id

    def nvmlDeviceGetComputeInstanceId(self, handle) -> int:  # noqa: N802
        with self._lock:
            self._gpu(handle, "nvmlDeviceGetComputeInstanceId")
            if not isinstance(handle, FakeMigDevice):
                raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            return handle.compute_instance_id

    # --- NVML: events (XID) ---------------------------------------------------------------------------------

    def nvmlEventSetCreate(self) -> FakeEventSet:  # noqa: N802
        with self._lock:
            self._check_init()
            event_set = FakeEventSet()
            self._event_sets.append(event_set)
            return event_set

    def nvmlDeviceRegisterEvents(self, handle, event_types: int, event_set: FakeEventSet) -> None:  # noqa: N802
        with self._lock:
            target = self._gpu(handle, "nvmlDeviceRegisterEvents")
            event_set.registered[target.index] = event_set.registered.get(target.index, 0) | event_types

    def nvmlEventSetWait_v2(self, event_set: FakeEventSet, timeout_ms: int) -> FakeEventData:  # noqa: N802
        with self._lock:
            self._check_init()
            if event_set.freed:
                raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            if not event_set.pending:
                # Returns at once instead of sleeping timeout_ms: tests and simulators need no real waiting.
                raise nvml_error(pynvml.NVML_ERROR_TIMEOUT)
            return event_set.pending.popleft()

    def nvmlEventSetWait(self, event_set: FakeEventSet, timeout_ms: int) -> FakeEventData:  # noqa: N802
        return self.nvmlEventSetWait_v2(event_set, timeout_ms)

    def nvmlEventSetFree(self, event_set: FakeEventSet) -> None:  # noqa: N802
        with self._lock:
            event_set.freed = True
            if event_set in self._event_sets:
                self._event_sets.remove(event_set)
