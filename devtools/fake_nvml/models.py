"""GPU models and node profiles of the fake NVML, from public ``nvidia-smi`` captures.

Device numbers come from ``shared/fixtures/nvidia_smi/`` (see its README for provenance); each model says which.
"""

from __future__ import annotations

from dataclasses import dataclass

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
