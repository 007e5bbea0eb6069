"""The fake NVML: shaped like the real captures, deterministic, and failing with pynvml's own errors."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pynvml
import pytest

from devtools.fake_nvml import GPU_MODELS, PROFILES, FakeClock, FakeNvml

MIB = 1024 * 1024


def _number(text: str) -> float:
    return float(text.split()[0])


def _xml_capture(path: Path) -> dict:
    root = ET.parse(path).getroot()  # noqa: S314 - the repository's own fixture files
    gpu = root.find("gpu")
    power = gpu.find(".//enforced_power_limit")
    if power is None:
        power = gpu.find("gpu_power_readings/current_power_limit")
    draw = gpu.find(".//power_draw")
    return {
        "driver": root.findtext("driver_version"),
        "count": int(root.findtext("attached_gpus")),
        "name": gpu.findtext("product_name"),
        "total_mib": _number(gpu.findtext("fb_memory_usage/total")),
        "reserved_mib": _number(gpu.findtext("fb_memory_usage/reserved")),
        "power_limit_w": _number(power.text),
        "power_draw_w": _number(draw.text),
        "temp_c": _number(gpu.findtext("temperature/gpu_temp")),
        "max_sm_mhz": _number(gpu.findtext("max_clocks/sm_clock")),
        "mig": [
            (int(d.findtext("gpu_instance_id")), _number(d.findtext("fb_memory_usage/total")))
            for d in gpu.findall("mig_devices/mig_device")
        ],
    }


def _h100_capture(path: Path) -> dict:
    text = path.read_text()
    idle = text[text.index("# idle :: query (-q)") : text.index("# idle :: query-gpu")]
    memory = re.search(r"FB Memory Usage\s+Total\s+: (\d+) MiB\s+Reserved\s+: (\d+) MiB", idle)
    return {
        "driver": re.search(r"Driver Version\s+: (\S+)", idle)[1],
        "count": 8,  # the capture is one GPU of a machine; the profile is a DGX H100's eight
        "name": re.search(r"Product Name\s+: (.+)", idle)[1].strip(),
        "total_mib": float(memory[1]),
        "reserved_mib": float(memory[2]),
        "power_limit_w": float(re.search(r"Current Power Limit\s+: ([\d.]+) W", idle)[1]),
        "power_draw_w": float(re.search(r"Average Power Draw\s+: ([\d.]+) W", idle)[1]),
        "temp_c": float(re.search(r"GPU Current Temp\s+: (\d+) C", idle)[1]),
        "max_sm_mhz": float(re.search(r"Max Clocks\s+Graphics\s+: \d+ MHz\s+SM\s+: (\d+) MHz", idle)[1]),
        "mig": [],
    }


@pytest.mark.parametrize(
    ("profile", "capture"),
    [
        ("t4", "telegraf_tesla-t4.xml"),
        ("g5", "telegraf_a10g.xml"),
        ("a100-mig", "telegraf_a100-sxm4-v12.xml"),
        ("dgx-h100", "nvgpuexp_linux-x86_64__nvidia-h100-80gb-hbm3__590.48.01.txt"),
    ],
)
def test_profiles_report_what_the_captures_show(shared_fixtures: Path, profile: str, capture: str) -> None:
    path = shared_fixtures / "nvidia_smi" / capture
    expected = _xml_capture(path) if capture.endswith(".xml") else _h100_capture(path)
    nvml = FakeNvml.from_profile(profile)
    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    memory = nvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2)
    assert nvml.nvmlSystemGetDriverVersion() == expected["driver"]
    assert nvml.nvmlDeviceGetCount() == expected["count"]
    assert nvml.nvmlDeviceGetName(handle) == expected["name"]
    assert memory.total // MIB == expected["total_mib"]
    assert memory.reserved // MIB == expected["reserved_mib"]
    assert nvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000 == expected["power_limit_w"]
    assert nvml.nvmlDeviceGetPowerUsage(handle) / 1000 == expected["power_draw_w"]
    assert nvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU) == expected["temp_c"]
    nvml.set_load(0, util_pct=100)
    assert nvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM) == expected["max_sm_mhz"]
    mig = []
    for index in range(len(expected["mig"])):
        mig_handle = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, index)
        total = nvml.nvmlDeviceGetMemoryInfo(mig_handle, version=pynvml.nvmlMemory_v2).total // MIB
        mig.append((nvml.nvmlDeviceGetGpuInstanceId(mig_handle), total))
    assert mig == expected["mig"]


def test_the_h100_full_load_matches_the_capture_under_gpu_burn(shared_fixtures: Path) -> None:
    text = (shared_fixtures / "nvidia_smi" / "nvgpuexp_linux-x86_64__nvidia-h100-80gb-hbm3__590.48.01.txt").read_text()
    loaded = text[text.index("# load :: query (-q)") : text.index("# load :: query-gpu")]
    nvml = FakeNvml.from_profile("dgx-h100")
    nvml.nvmlInit()
    nvml.set_load(0, util_pct=100)
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    rates = nvml.nvmlDeviceGetUtilizationRates(handle)
    assert rates.gpu == int(re.search(r"Utilization\s+GPU\s+: (\d+) %", loaded)[1])
    assert rates.memory == int(re.search(r"Utilization\s+GPU\s+: \d+ %\s+Memory\s+: (\d+) %", loaded)[1])
    assert nvml.nvmlDeviceGetPowerUsage(handle) / 1000 == float(
        re.search(r"Average Power Draw\s+: ([\d.]+) W", loaded)[1]
    )
    assert nvml.nvmlDeviceGetTemperature(handle, 0) == int(re.search(r"GPU Current Temp\s+: (\d+) C", loaded)[1])


def test_models_match_the_catalogue_names() -> None:
    assert {"H100", "A100-80GB", "A10G", "T4"} <= GPU_MODELS.keys()
    assert set(PROFILES) == {"dgx-h100", "a100-mig", "g5", "t4"}


def test_same_seed_same_node_other_seed_other_node() -> None:
    def snapshot(seed: int) -> list:
        nvml = FakeNvml.from_profile("dgx-h100", seed=seed, clock=FakeClock(), noise_pct=5)
        nvml.nvmlInit()
        nvml.set_load(util_pct=60)
        out = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            out.append(
                (
                    nvml.nvmlDeviceGetUUID(handle),
                    nvml.nvmlDeviceGetPowerUsage(handle),
                    nvml.nvmlDeviceGetUtilizationRates(handle).gpu,
                    nvml.nvmlDeviceGetTotalEnergyConsumption(handle),
                )
            )
        return out

    assert snapshot(7) == snapshot(7)
    assert {uuid for uuid, *_ in snapshot(7)}.isdisjoint(uuid for uuid, *_ in snapshot(8))
    assert len({uuid for uuid, *_ in snapshot(7)}) == 8


def test_noise_stays_near_the_set_load_and_under_the_limit() -> None:
    nvml = FakeNvml.for_model("H100", 1, noise_pct=10)
    nvml.nvmlInit()
    nvml.set_load(util_pct=100)
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    draws = [nvml.nvmlDeviceGetPowerUsage(handle) / 1000 for _ in range(200)]
    assert len(set(draws)) > 100
    assert all(629.45 * 0.9 <= w <= 700 for w in draws)


def test_energy_integrates_power_over_the_clock() -> None:
    clock = FakeClock()
    nvml = FakeNvml.for_model("A10G", clock=clock)
    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    start = nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    clock.advance(60)  # idle at 25.58 W
    nvml.set_load(0, power_w=200)
    clock.advance(30)
    assert nvml.nvmlDeviceGetTotalEnergyConsumption(handle) - start == pytest.approx(
        (25.58 * 60 + 200 * 30) * 1000, abs=1
    )


def test_memory_v1_counts_reserved_as_used_and_v2_separates_it() -> None:
    nvml = FakeNvml.from_profile("t4")
    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    v1 = nvml.nvmlDeviceGetMemoryInfo(handle)
    v2 = nvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2)
    assert (v2.used // MIB, v2.reserved // MIB, v2.total // MIB) == (1032, 388, 15360)
    assert v1.used == v2.used + v2.reserved
    assert v1.free == v2.free == v2.total - v2.used - v2.reserved


def test_errors_are_pynvmls_own_classes() -> None:
    nvml = FakeNvml.from_profile("dgx-h100")
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        nvml.nvmlDeviceGetCount()
    nvml.nvmlInit()
    nvml.lose_gpu(2)
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        nvml.nvmlDeviceGetHandleByIndex(2)
    handle = nvml.nvmlDeviceGetHandleByIndex(1)
    nvml.fail(1, "nvmlDeviceGetPowerUsage")
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlDeviceGetPowerUsage(handle)
    nvml.clear_failures()
    assert nvml.nvmlDeviceGetPowerUsage(handle) == 69850
    with pytest.raises(pynvml.NVMLError_NotFound):  # slot 4 of seven is empty on a 4-instance layout
        _mig_slot(FakeNvml.from_profile("a100-mig"), 4)
    nvml.unload_driver(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    with pytest.raises(pynvml.NVMLError_LibraryNotFound):
        nvml.nvmlInit()
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        nvml.nvmlDeviceGetCount()


def _mig_slot(nvml: FakeNvml, index: int):
    nvml.nvmlInit()
    return nvml.nvmlDeviceGetMigDeviceHandleByIndex(nvml.nvmlDeviceGetHandleByIndex(0), index)


def test_mig_device_names_carry_the_profile_as_nvml_does() -> None:
    nvml = FakeNvml.from_profile("a100-mig")
    mig = _mig_slot(nvml, 0)
    assert nvml.nvmlDeviceGetName(mig) == "NVIDIA A100-SXM4-80GB MIG 1g.20gb"
    assert nvml.nvmlDeviceGetUUID(mig).startswith("MIG-")
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlDeviceGetUtilizationRates(nvml.nvmlDeviceGetHandleByIndex(0))


def test_xid_events_reach_registered_event_sets_only() -> None:
    nvml = FakeNvml.from_profile("dgx-h100")
    nvml.nvmlInit()
    events = nvml.nvmlEventSetCreate()
    nvml.nvmlDeviceRegisterEvents(nvml.nvmlDeviceGetHandleByIndex(1), nvml.nvmlEventTypeXidCriticalError, events)
    nvml.inject_xid(0, 13)  # GPU 0 is not registered
    nvml.inject_xid(1, 79)
    event = nvml.nvmlEventSetWait(events, 1000)
    assert (nvml.nvmlDeviceGetUUID(event.device), event.eventData) == (nvml.gpus[1].uuid, 79)
    with pytest.raises(pynvml.NVMLError_Timeout):
        nvml.nvmlEventSetWait(events, 1000)


def test_constants_are_pynvmls_and_unknown_functions_do_not_exist() -> None:
    nvml = FakeNvml.from_profile("t4")
    assert nvml.NVML_CLOCK_SM == pynvml.NVML_CLOCK_SM
    assert nvml.NVMLError is pynvml.NVMLError
    assert nvml.NVMLError_GpuIsLost is pynvml.NVMLError_GpuIsLost
    with pytest.raises(AttributeError):
        nvml.nvmlDeviceGetFanSpeed  # noqa: B018
    with pytest.raises(ValueError, match="not an NVML function"):
        nvml.fail(0, "nvmlDeviceGetFanSpeed")
    with pytest.raises(ValueError, match="unknown fake NVML profile"):
        FakeNvml.from_profile("dgx-b200")
    with pytest.raises(ValueError, match="unknown GPU model"):
        FakeNvml.for_model("B200")
