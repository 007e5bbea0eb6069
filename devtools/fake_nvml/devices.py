"""The simulated devices of the fake NVML: a controllable clock, GPUs, MIG devices and XID event sets."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import pynvml

from devtools.fake_nvml.models import GpuModel


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
class FakeEventSet:
    """What nvmlEventSetCreate returns: the registered event masks and the events not yet read."""

    registered: dict[int, int] = field(default_factory=dict)  # GPU index -> event type mask
    pending: deque[FakeEventData] = field(default_factory=deque)
    freed: bool = False


def nvml_error(code: int) -> pynvml.NVMLError:
    """pynvml's error for ``code`` (the matching NVMLError subclass)."""
    return pynvml.NVMLError(code)
