"""A fake NVML with pynvml's interface, for tests, the fleet simulator and trying the agent without a GPU.

Each ``FakeNvml`` is an independent set of simulated GPUs, so one process can run many virtual agents. It
raises real ``pynvml.NVMLError`` subclasses and returns pynvml's own ctypes structures, so the agent handles
the fake and the real library the same way. Device numbers come from public ``nvidia-smi`` captures in
``shared/fixtures/nvidia_smi/`` (see its README for provenance); each model below says which.

Everything is deterministic for a given ``seed``: UUIDs, the energy counter's starting value and, when
``noise_pct`` is set, the noise added to readings (given the same sequence of calls).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pynvml

MIB = 1024 * 1024
MW_PER_W = 1000
MJ_PER_J = 1000
S_PER_DAY = 86_400
MAX_MIG_DEVICES = 7  # A100/H100: at most seven GPU instances
SAMPLING_PERIOD_US = 167_000  # what nvmlDeviceGetEncoderUtilization reports as its window on data-centre GPUs

# Only one capture (the H100 one) was taken under load: gpu-burn at 100 % drew 629.45 W of a 700 W limit
# and warmed the GPU from 41 to 59 C. Models captured only idle reach full load by the same rules.
FULL_LOAD_POWER_RATIO = 629.45 / 700.0
FULL_LOAD_TEMP_RISE_C = 59 - 41
DEFAULT_DRIVER_VERSION = "535.54.03"


@dataclass(frozen=True)
class GpuModel:
    """One GPU model as NVML reports it: identity, memory, power and clocks idle and at full load."""

    key: str
    nvml_name: str
    memory_total_mib: int
    memory_reserved_mib: int
    idle_memory_used_mib: int
    power_limit_w: float
    idle_power_w: float
    idle_temp_c: int
    idle_sm_clock_mhz: int
    max_sm_clock_mhz: int
    idle_mem_clock_mhz: int
    max_mem_clock_mhz: int
    full_power_w: float | None = None
    full_temp_c: int | None = None
    full_mem_util_pct: float = 11.0  # H100 capture under gpu-burn; compute-bound load barely moves memory
    pcie_replays: int = 0
    row_remapping: bool = True
    mig_capable: bool = False

    @property
    def full_load_power_w(self) -> float:
        """Power draw at 100 % utilisation (captured, or scaled like the H100 capture)."""
        return self.full_power_w if self.full_power_w is not None else self.power_limit_w * FULL_LOAD_POWER_RATIO

    @property
    def full_load_temp_c(self) -> int:
        """GPU temperature at 100 % utilisation (captured, or the H100 capture's rise)."""
        return self.full_temp_c if self.full_temp_c is not None else self.idle_temp_c + FULL_LOAD_TEMP_RISE_C


def _uncaptured(key: str, nvml_name: str, memory_mib: int, power_limit_w: float, max_sm_clock_mhz: int) -> GpuModel:
    # No nvidia-smi capture for these: memory and power limit are fleet/catalog.py's GPU_SPECS (NVIDIA product
    # briefs); idle draw (10 % of the limit), 30 C idle and the clocks are placeholders for the simulator.
    return GpuModel(
        key,
        nvml_name,
        memory_total_mib=memory_mib,
        memory_reserved_mib=0,
        idle_memory_used_mib=0,
        power_limit_w=power_limit_w,
        idle_power_w=power_limit_w / 10,
        idle_temp_c=30,
        idle_sm_clock_mhz=210,
        max_sm_clock_mhz=max_sm_clock_mhz,
        idle_mem_clock_mhz=405,
        max_mem_clock_mhz=1593,
    )


GPU_MODELS: dict[str, GpuModel] = {
    model.key: model
    for model in (
        # nvgpuexp_linux-x86_64__nvidia-h100-80gb-hbm3__590.48.01.txt, `nvidia-smi -q` idle and under gpu-burn:
        # FB 81559 MiB (479 reserved), 700 W limit, 69.85 -> 629.45 W, 41 -> 59 C, SM 345 -> 1980 MHz,
        # memory clock 2619 MHz, memory utilisation 11 % at 100 % GPU, 9 PCIe replays since reset.
        GpuModel(
            "H100",
            "NVIDIA H100 80GB HBM3",
            memory_total_mib=81559,
            memory_reserved_mib=479,
            idle_memory_used_mib=0,
            power_limit_w=700.0,
            idle_power_w=69.85,
            idle_temp_c=41,
            idle_sm_clock_mhz=345,
            max_sm_clock_mhz=1980,
            idle_mem_clock_mhz=2619,
            max_mem_clock_mhz=2619,
            full_power_w=629.45,
            full_temp_c=59,
            full_mem_util_pct=11.0,
            pcie_replays=9,
            mig_capable=True,
        ),
        # telegraf_a100-sxm4-v12.xml (idle, MIG on): FB 81920 MiB (869 reserved, 50 used), 500 W limit, 67.03 W,
        # 27 C, SM 1275 MHz (max 1410), memory clock 1593 MHz.
        GpuModel(
            "A100-80GB",
            "NVIDIA A100-SXM4-80GB",
            memory_total_mib=81920,
            memory_reserved_mib=869,
            idle_memory_used_mib=50,
            power_limit_w=500.0,
            idle_power_w=67.03,
            idle_temp_c=27,
            idle_sm_clock_mhz=1275,
            max_sm_clock_mhz=1410,
            idle_mem_clock_mhz=1593,
            max_mem_clock_mhz=1593,
            mig_capable=True,
        ),
        # telegraf_a10g.xml (AWS g5, idle): FB 23028 MiB (435 reserved, 22 used), 300 W limit, 25.58 W, 17 C,
        # SM 210 MHz (max 1710), memory clock 405 MHz (max 6251), row remapping supported.
        GpuModel(
            "A10G",
            "NVIDIA A10G",
            memory_total_mib=23028,
            memory_reserved_mib=435,
            idle_memory_used_mib=22,
            power_limit_w=300.0,
            idle_power_w=25.58,
            idle_temp_c=17,
            idle_sm_clock_mhz=210,
            max_sm_clock_mhz=1710,
            idle_mem_clock_mhz=405,
            max_mem_clock_mhz=6251,
        ),
        # telegraf_tesla-t4.xml (AWS g4dn, idle): FB 15360 MiB (388 reserved, 1032 used), 70 W limit, 26.78 W,
        # 40 C, SM 585 MHz (max 1590), memory clock 5001 MHz; remapped_rows N/A (Turing retires pages instead).
        GpuModel(
            "T4",
            "Tesla T4",
            memory_total_mib=15360,
            memory_reserved_mib=388,
            idle_memory_used_mib=1032,
            power_limit_w=70.0,
            idle_power_w=26.78,
            idle_temp_c=40,
            idle_sm_clock_mhz=585,
            max_sm_clock_mhz=1590,
            idle_mem_clock_mhz=5001,
            max_mem_clock_mhz=5001,
            row_remapping=False,
        ),
        _uncaptured("H200", "NVIDIA H200", 144384, 700.0, 1980),
        _uncaptured("A100-40GB", "NVIDIA A100-SXM4-40GB", 40960, 400.0, 1410),
        _uncaptured("L4", "NVIDIA L4", 22888, 72.0, 2040),
        _uncaptured("L40S", "NVIDIA L40S", 45776, 350.0, 2520),
    )
}


@dataclass(frozen=True)
class MigLayout:
    """The MIG instances every GPU of a node is split into (one compute instance each)."""

    profile: str
    memory_total_mib: int
    memory_used_mib: int
    gpu_instance_ids: tuple[int, ...]


# telegraf_a100-sxm4-v12.xml: four MIG devices, GPU instances 3-6, each 14 SMs and 19968 MiB (12 MiB used):
# the A100-80GB "1g.20gb" profile.
A100_1G_20GB_X4 = MigLayout("1g.20gb", memory_total_mib=19968, memory_used_mib=12, gpu_instance_ids=(3, 4, 5, 6))


@dataclass(frozen=True)
class Profile:
    """A node shape for the fake: which GPU model, how many, the driver, and MIG if any."""

    model: str
    count: int
    driver_version: str
    mig: MigLayout | None = None


PROFILES: dict[str, Profile] = {
    # The H100 capture's driver on a DGX H100's eight GPUs.
    "dgx-h100": Profile("H100", 8, "590.48.01"),
    # telegraf_a100-sxm4-v12.xml: attached_gpus 4, driver 535.54.03; its one listed GPU's MIG layout on all four.
    "a100-mig": Profile("A100-80GB", 4, "535.54.03", mig=A100_1G_20GB_X4),
    # telegraf_a10g.xml: AWS g5.xlarge, driver 515.105.01.
    "g5": Profile("A10G", 1, "515.105.01"),
    # telegraf_tesla-t4.xml: AWS g4dn.xlarge, driver 515.105.01.
    "t4": Profile("T4", 1, "515.105.01"),
}


class FakeClock:
    """A clock that only moves when told to, for deterministic energy counters."""

    def __init__(self, start_s: float = 0.0) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now_s += seconds


@dataclass(eq=False)
class FakeMigDevice:
    """One MIG device (GPU instance + compute instance) of a FakeGpu; it is its own NVML handle."""

    parent: FakeGpu
    index: int
    profile: str
    gpu_instance_id: int
    compute_instance_id: int
    uuid: str
    memory_total_mib: int
    memory_used_mib: int


@dataclass(eq=False)
class FakeGpu:
    """One simulated GPU and its current state; it is its own NVML handle."""

    model: GpuModel
    index: int
    uuid: str
    pci_bus_id: str
    power_w: float
    temp_c: float
    sm_clock_mhz: int
    mem_clock_mhz: int
    memory_used_mib: int
    energy_mj: float
    energy_at_s: float
    util_pct: float = 0.0
    mem_util_pct: float = 0.0
    enc_util_pct: float = 0.0
    dec_util_pct: float = 0.0
    ecc_sbe_volatile: int = 0
    ecc_dbe_volatile: int = 0
    ecc_sbe_aggregate: int = 0
    ecc_dbe_aggregate: int = 0
    remapped_correctable: int = 0
    remapped_uncorrectable: int = 0
    remap_failure: bool = False
    pcie_replays: int = 0
    lost: bool = False
    mig_enabled: bool = False
    mig_devices: list[FakeMigDevice] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)


@dataclass(eq=False)
class FakeEventData:
    """What nvmlEventSetWait returns (pynvml's c_nvmlEventData_t cannot hold a Python handle)."""

    device: FakeGpu
    eventType: int  # noqa: N815 - pynvml's field names
    eventData: int  # noqa: N815
    gpuInstanceId: int  # noqa: N815
    computeInstanceId: int  # noqa: N815


@dataclass(eq=False)
class _FakeEventSet:
    registered: dict[int, int] = field(default_factory=dict)  # GPU index -> event type mask
    pending: deque[FakeEventData] = field(default_factory=deque)
    freed: bool = False


def _nvml_error(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)


class FakeNvml:
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
        self._event_sets: list[_FakeEventSet] = []
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
            raise _nvml_error(pynvml.NVML_ERROR_UNINITIALIZED)

    def _gpu(self, handle: object, function: str) -> FakeGpu:
        self._check_init()
        target = handle.parent if isinstance(handle, FakeMigDevice) else handle
        if not isinstance(target, FakeGpu) or target not in self.gpus:
            raise _nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if target.lost:
            raise _nvml_error(pynvml.NVML_ERROR_GPU_IS_LOST)
        error = target.failures.get(function)
        if error is not None:
            raise _nvml_error(error)
        return target

    def _noisy(self, value: float, high: float) -> float:
        if not self.noise_pct:
            return value
        return max(0.0, min(high, value * (1 + self._noise.uniform(-self.noise_pct, self.noise_pct) / 100)))

    def _integrate_energy(self, target: FakeGpu) -> None:
        now = self._clock()
        target.energy_mj += target.power_w * (now - target.energy_at_s) * MJ_PER_J
        target.energy_at_s = now

    # --- NVML: library and system ---------------------------------------------------------------------------

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names
        with self._lock:
            if self._driver_error is not None:
                raise _nvml_error(self._driver_error)
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
                raise _nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
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
                raise _nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
            rates = pynvml.c_nvmlUtilization_t()
            rates.gpu = round(self._noisy(target.util_pct, 100))
            rates.memory = round(self._noisy(target.mem_util_pct, 100))
            return rates

    def nvmlDeviceGetEncoderUtilization(self, handle) -> list[int]:  # noqa: N802
        with self._lock:
            target = self._gpu(handle, "nvmlDeviceGetEncoderUtilization")
            if target.mig_enabled:
                raise _nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
            return [round(target.enc_util_pct), SAMPLING_PERIOD_US]

    def nvmlDeviceGetDecoderUtilization(self, handle) -> list[int]:  # noqa: N802
        with self._lock:
            target = self._gpu(handle, "nvmlDeviceGetDecoderUtilization")
            if target.mig_enabled:
                raise _nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
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
                raise _nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            return round(self._noisy(target.temp_c, 120))

    def nvmlDeviceGetClockInfo(self, handle, clock_type: int) -> int:  # noqa: N802
        with self._lock:
            target = self._gpu(handle, "nvmlDeviceGetClockInfo")
            if clock_type in (pynvml.NVML_CLOCK_SM, pynvml.NVML_CLOCK_GRAPHICS):
                return target.sm_clock_mhz
            if clock_type == pynvml.NVML_CLOCK_MEM:
                return target.mem_clock_mhz
            raise _nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)

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
                raise _nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
            return (target.remapped_correctable, target.remapped_uncorrectable, 0, int(target.remap_failure))

    # --- NVML: MIG ------------------------------------------------------------------------------------------

    def nvmlDeviceGetMigMode(self, handle) -> list[int]:  # noqa: N802
        with self._lock:
            target = self._gpu(handle, "nvmlDeviceGetMigMode")
            if not target.model.mig_capable:
                raise _nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
            mode = pynvml.NVML_DEVICE_MIG_ENABLE if target.mig_enabled else pynvml.NVML_DEVICE_MIG_DISABLE
            return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle) -> int:  # noqa: N802
        with self._lock:
            target = self._gpu(handle, "nvmlDeviceGetMaxMigDeviceCount")
            if not target.model.mig_capable:
                raise _nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
            return MAX_MIG_DEVICES

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle, index: int) -> FakeMigDevice:  # noqa: N802
        with self._lock:
            target = self._gpu(handle, "nvmlDeviceGetMigDeviceHandleByIndex")
            if not target.mig_enabled or not 0 <= index < MAX_MIG_DEVICES:
                raise _nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            if index >= len(target.mig_devices):
                raise _nvml_error(pynvml.NVML_ERROR_NOT_FOUND)
            return target.mig_devices[index]

    def nvmlDeviceIsMigDeviceHandle(self, handle) -> bool:  # noqa: N802
        with self._lock:
            self._gpu(handle, "nvmlDeviceIsMigDeviceHandle")
            return isinstance(handle, FakeMigDevice)

    def nvmlDeviceGetGpuInstanceId(self, handle) -> int:  # noqa: N802
        with self._lock:
            self._gpu(handle, "nvmlDeviceGetGpuInstanceId")
            if not isinstance(handle, FakeMigDevice):
                raise _nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            return handle.gpu_instance_id

    def nvmlDeviceGetComputeInstanceId(self, handle) -> int:  # noqa: N802
        with self._lock:
            self._gpu(handle, "nvmlDeviceGetComputeInstanceId")
            if not isinstance(handle, FakeMigDevice):
                raise _nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            return handle.compute_instance_id

    # --- NVML: events (XID) ---------------------------------------------------------------------------------

    def nvmlEventSetCreate(self) -> _FakeEventSet:  # noqa: N802
        with self._lock:
            self._check_init()
            event_set = _FakeEventSet()
            self._event_sets.append(event_set)
            return event_set

    def nvmlDeviceRegisterEvents(self, handle, event_types: int, event_set: _FakeEventSet) -> None:  # noqa: N802
        with self._lock:
            target = self._gpu(handle, "nvmlDeviceRegisterEvents")
            event_set.registered[target.index] = event_set.registered.get(target.index, 0) | event_types

    def nvmlEventSetWait_v2(self, event_set: _FakeEventSet, timeout_ms: int) -> FakeEventData:  # noqa: N802
        with self._lock:
            self._check_init()
            if event_set.freed:
                raise _nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            if not event_set.pending:
                # Returns at once instead of sleeping timeout_ms: tests and simulators need no real waiting.
                raise _nvml_error(pynvml.NVML_ERROR_TIMEOUT)
            return event_set.pending.popleft()

    def nvmlEventSetWait(self, event_set: _FakeEventSet, timeout_ms: int) -> FakeEventData:  # noqa: N802
        return self.nvmlEventSetWait_v2(event_set, timeout_ms)

    def nvmlEventSetFree(self, event_set: _FakeEventSet) -> None:  # noqa: N802
        with self._lock:
            event_set.freed = True
            if event_set in self._event_sets:
                self._event_sets.remove(event_set)
