"""``FakeNvml``: an in-memory NVML over simulated GPUs, its constructors and its simulation controls.

Each ``FakeNvml`` is an independent set of simulated GPUs, so one process can run many virtual agents. It
raises real ``pynvml.NVMLError`` subclasses and returns pynvml's own ctypes structures, so the agent handles
the fake and the real library the same way. Device numbers come from public ``nvidia-smi`` captures
(``devtools.fake_nvml.models``).

Everything is deterministic for a given ``seed``: UUIDs, the energy counter's starting value and, when
``noise_pct`` is set, the noise added to readings (given the same sequence of calls).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence

import pynvml

from devtools.fake_nvml.devices import FakeEventData, FakeEventSet, FakeGpu, FakeMigDevice, nvml_error
from devtools.fake_nvml.functions import NvmlFunctions
from devtools.fake_nvml.models import (
    DEFAULT_DRIVER_VERSION,
    GPU_MODELS,
    MJ_PER_J,
    PROFILES,
    S_PER_DAY,
    GpuModel,
    MigLayout,
)


class FakeNvml(NvmlFunctions):
    """An in-memory NVML: pynvml's functions, constants and errors over simulated GPUs.

    Constants (``NVML_*``, ``nvmlEventType*``, ``nvmlMemory_v2``) and error classes (``NVMLError*``) are
    pynvml's own. Functions the fake does not implement raise AttributeError rather than pretend.
    """

    def __init__(
        self,
        models: Sequence[GpuModel],
        *,
        driver_version: str = DEFAULT_DRIVER_VERSION,
        seed: int = 0,
        mig: MigLayout | None = None,
        clock: Callable[[], float] = time.monotonic,
        noise_pct: float = 0.0,
        driver_loaded: bool = True,
    ) -> None:
        self.driver_version = driver_version
        self.seed = seed
        self.noise_pct = noise_pct
        self._clock = clock
        self._lock = threading.RLock()
        self._noise = random.Random(f"fleetdeck-fake-nvml-noise-{seed}")  # noqa: S311 - simulation, not secrets
        self._refcount = 0
        self._driver_error: int | None = None if driver_loaded else pynvml.NVML_ERROR_DRIVER_NOT_LOADED
        self._event_sets: list[FakeEventSet] = []
        identity = random.Random(f"fleetdeck-fake-nvml-{seed}")  # noqa: S311 - simulation, not secrets
        now = clock()
        self.gpus: list[FakeGpu] = []
        for index, model in enumerate(models):
            # Single-GPU captures (AWS g4dn, g5) sit at 00:1E.0; larger nodes get one bus per GPU.
            bus = "00000000:00:1E.0" if len(models) == 1 else f"00000000:{0x18 + 0x10 * index:02X}:00.0"
            uptime_s = identity.uniform(1, 30) * S_PER_DAY
            gpu = FakeGpu(
                model=model,
                index=index,
                uuid=f"GPU-{uuid.UUID(int=identity.getrandbits(128))}",
                pci_bus_id=bus,
                power_w=model.idle_power_w,
                temp_c=model.idle_temp_c,
                sm_clock_mhz=model.idle_sm_clock_mhz,
                mem_clock_mhz=model.idle_mem_clock_mhz,
                memory_used_mib=model.idle_memory_used_mib,
                energy_mj=model.idle_power_w * uptime_s * MJ_PER_J,
                energy_at_s=now,
                pcie_replays=model.pcie_replays,
            )
            if mig is not None and model.mig_capable:
                gpu.mig_enabled = True
                gpu.mig_devices = [
                    FakeMigDevice(
                        parent=gpu,
                        index=i,
                        profile=mig.profile,
                        gpu_instance_id=gi,
                        compute_instance_id=0,
                        uuid=f"MIG-{uuid.UUID(int=identity.getrandbits(128))}",
                        memory_total_mib=mig.memory_total_mib,
                        memory_used_mib=mig.memory_used_mib,
                    )
                    for i, gi in enumerate(mig.gpu_instance_ids)
                ]
            self.gpus.append(gpu)

    @classmethod
    def from_profile(
        cls, name: str, *, seed: int = 0, clock: Callable[[], float] = time.monotonic, noise_pct: float = 0.0
    ) -> FakeNvml:
        """A fake node shaped like one of PROFILES ('dgx-h100', 'a100-mig', 'g5', 't4')."""
        try:
            profile = PROFILES[name]
        except KeyError:
            raise ValueError(f"unknown fake NVML profile {name!r}; choose from {', '.join(PROFILES)}") from None
        return cls(
            [GPU_MODELS[profile.model]] * profile.count,
            driver_version=profile.driver_version,
            seed=seed,
            mig=profile.mig,
            clock=clock,
            noise_pct=noise_pct,
        )

    @classmethod
    def for_model(
        cls,
        model: str,
        count: int = 1,
        *,
        seed: int = 0,
        driver_version: str = DEFAULT_DRIVER_VERSION,
        clock: Callable[[], float] = time.monotonic,
        noise_pct: float = 0.0,
    ) -> FakeNvml:
        """A fake node with ``count`` GPUs of one GPU_MODELS key (the same keys as fleet.catalog.GPU_SPECS)."""
        if model not in GPU_MODELS:
            raise ValueError(f"unknown GPU model {model!r}; choose from {', '.join(GPU_MODELS)}")
        return cls(
            [GPU_MODELS[model]] * count, driver_version=driver_version, seed=seed, clock=clock, noise_pct=noise_pct
        )

    # --- pynvml's constants and error classes -------------------------------------------------------------

    def __getattr__(self, name: str):
        if name.startswith(("NVML_", "NVMLError", "nvmlEventType", "nvmlMemory_", "nvmlClocksEvent")):
            return getattr(pynvml, name)
        raise AttributeError(f"{type(self).__name__} does not implement {name}")

    # --- simulation controls --------------------------------------------------------------------------------

    def _targets(self, gpu: int | None) -> list[FakeGpu]:
        return self.gpus if gpu is None else [self.gpus[gpu]]

    def set_load(
        self,
        gpu: int | None = None,
        *,
        util_pct: float | None = None,
        mem_util_pct: float | None = None,
        memory_used_mib: int | None = None,
        power_w: float | None = None,
        temp_c: float | None = None,
        sm_clock_mhz: int | None = None,
        mem_clock_mhz: int | None = None,
        enc_util_pct: float | None = None,
        dec_util_pct: float | None = None,
    ) -> None:
        """Set one GPU's (or, with gpu=None, every GPU's) load.

        ``util_pct`` alone also moves power, temperature, clocks and memory utilisation along the model's
        idle-to-full-load line; any value given explicitly wins. On a MIG GPU ``memory_used_mib`` is spread
        evenly over its MIG devices.
        """
        with self._lock:
            for target in self._targets(gpu):
                self._integrate_energy(target)
                model = target.model
                if util_pct is not None:
                    load = max(0.0, min(util_pct, 100.0)) / 100
                    target.util_pct = util_pct
                    target.mem_util_pct = model.full_mem_util_pct * load
                    target.power_w = model.idle_power_w + (model.full_load_power_w - model.idle_power_w) * load
                    target.temp_c = model.idle_temp_c + (model.full_load_temp_c - model.idle_temp_c) * load
                    # GPUs boost to their top clocks as soon as there is work, as the H100 capture shows.
                    busy = load > 0
                    target.sm_clock_mhz = model.max_sm_clock_mhz if busy else model.idle_sm_clock_mhz
                    target.mem_clock_mhz = model.max_mem_clock_mhz if busy else model.idle_mem_clock_mhz
                if mem_util_pct is not None:
                    target.mem_util_pct = mem_util_pct
                if power_w is not None:
                    target.power_w = power_w
                if temp_c is not None:
                    target.temp_c = temp_c
                if sm_clock_mhz is not None:
                    target.sm_clock_mhz = sm_clock_mhz
                if mem_clock_mhz is not None:
                    target.mem_clock_mhz = mem_clock_mhz
                if enc_util_pct is not None:
                    target.enc_util_pct = enc_util_pct
                if dec_util_pct is not None:
                    target.dec_util_pct = dec_util_pct
                if memory_used_mib is not None:
                    if target.mig_devices:
                        share = memory_used_mib // len(target.mig_devices)
                        for mig_device in target.mig_devices:
                            mig_device.memory_used_mib = min(share, mig_device.memory_total_mib)
                    else:
                        usable = model.memory_total_mib - model.memory_reserved_mib
                        target.memory_used_mib = max(0, min(memory_used_mib, usable))

    def inject_xid(self, gpu: int, xid: int, *, gpu_instance_id: int = 0xFFFFFFFF) -> None:
        """Raise an XID critical error event on a GPU, as the driver does (e.g. 79: fallen off the bus)."""
        with self._lock:
            target = self.gpus[gpu]
            event = FakeEventData(
                device=target,
                eventType=pynvml.nvmlEventTypeXidCriticalError,
                eventData=xid,
                gpuInstanceId=gpu_instance_id,
                computeInstanceId=0xFFFFFFFF,
            )
            for event_set in self._event_sets:
                if event_set.registered.get(gpu, 0) & pynvml.nvmlEventTypeXidCriticalError:
                    event_set.pending.append(event)

    def add_ecc_errors(self, gpu: int, *, corrected: int = 0, uncorrected: int = 0) -> None:
        """Count ECC errors on a GPU: single-bit (corrected) and double-bit (uncorrected), volatile and aggregate."""
        with self._lock:
            target = self.gpus[gpu]
            target.ecc_sbe_volatile += corrected
            target.ecc_sbe_aggregate += corrected
            target.ecc_dbe_volatile += uncorrected
            target.ecc_dbe_aggregate += uncorrected

    def add_remapped_rows(
        self, gpu: int, *, correctable: int = 0, uncorrectable: int = 0, failed: bool = False
    ) -> None:
        """Count remapped memory rows on a GPU, and optionally mark remapping as failed."""
        with self._lock:
            target = self.gpus[gpu]
            target.remapped_correctable += correctable
            target.remapped_uncorrectable += uncorrectable
            target.remap_failure = target.remap_failure or failed

    def lose_gpu(self, gpu: int) -> None:
        """Make every call on this GPU fail with NVML_ERROR_GPU_IS_LOST."""
        with self._lock:
            self.gpus[gpu].lost = True

    def recover_gpu(self, gpu: int) -> None:
        """Bring a lost GPU back (as after a reset)."""
        with self._lock:
            self.gpus[gpu].lost = False

    def fail(self, gpu: int, function: str, error: int = pynvml.NVML_ERROR_NOT_SUPPORTED) -> None:
        """Make one NVML function fail on one GPU with an NVML error code (default NOT_SUPPORTED)."""
        if not hasattr(type(self), function):
            raise ValueError(f"{function} is not an NVML function of the fake")
        with self._lock:
            self.gpus[gpu].failures[function] = error

    def clear_failures(self, gpu: int | None = None) -> None:
        """Undo fail() on one GPU or all."""
        with self._lock:
            for target in self._targets(gpu):
                target.failures.clear()

    def unload_driver(self, error: int = pynvml.NVML_ERROR_DRIVER_NOT_LOADED) -> None:
        """Simulate a missing driver or library: nvmlInit raises ``error``, every other call Uninitialized."""
        with self._lock:
            self._driver_error = error
            self._refcount = 0

    def load_driver(self) -> None:
        """The driver is back: nvmlInit works again."""
        with self._lock:
            self._driver_error = None

    # --- internals ------------------------------------------------------------------------------------------

    def _check_init(self) -> None:
        if self._refcount <= 0:
            raise nvml_error(pynvml.NVML_ERROR_UNINITIALIZED)

    def _gpu(self, handle: object, function: str) -> FakeGpu:
        self._check_init()
        target = handle.parent if isinstance(handle, FakeMigDevice) else handle
        if not isinstance(target, FakeGpu) or target not in self.gpus:
            raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if target.lost:
            raise nvml_error(pynvml.NVML_ERROR_GPU_IS_LOST)
        error = target.failures.get(function)
        if error is not None:
            raise nvml_error(error)
        return target

    def _noisy(self, value: float, high: float) -> float:
        if not self.noise_pct:
            return value
        return max(0.0, min(high, value * (1 + self._noise.uniform(-self.noise_pct, self.noise_pct) / 100)))

    def _integrate_energy(self, target: FakeGpu) -> None:
        now = self._clock()
        target.energy_mj += target.power_w * (now - target.energy_at_s) * MJ_PER_J
        target.energy_at_s = now
