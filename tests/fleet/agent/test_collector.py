"""The collector over the fake NVML: absent fields, errors, lost GPUs, a missing driver, XID, ECC, MIG."""

from __future__ import annotations

import threading

import pynvml
import pytest

from devtools.fake_nvml import FakeClock, FakeNvml
from fleet.agent import exposition as m
from fleet.agent.collector import Collector, NvmlUnavailable


def test_not_supported_fields_are_omitted_without_an_error() -> None:
    nvml = FakeNvml.from_profile("dgx-h100")
    nvml.fail(0, "nvmlDeviceGetPowerUsage")  # NOT_SUPPORTED by default
    readings = Collector(nvml).collect()
    assert m.POWER_USAGE not in readings[0].fields
    assert readings[0].fields[m.GPU_TEMP] == 41
    assert readings[1].fields[m.POWER_USAGE] == pytest.approx(69.85)
    assert readings[0].errors == []


def test_fields_a_model_lacks_are_omitted() -> None:
    (t4,) = Collector(FakeNvml.from_profile("t4")).collect()
    # The T4 capture shows remapped_rows N/A and no MIG; its other fields are all there.
    assert not {m.CORRECTABLE_REMAPPED_ROWS, m.ROW_REMAP_FAILURE, m.MIG_MODE} & t4.fields.keys()
    assert {m.ENC_UTIL, m.ECC_DBE_VOL_TOTAL, m.PCIE_REPLAY_COUNTER} <= t4.fields.keys()
    assert t4.errors == []


def test_other_field_errors_omit_the_field_and_are_reported() -> None:
    nvml = FakeNvml.from_profile("g5")
    nvml.fail(0, "nvmlDeviceGetTemperature", pynvml.NVML_ERROR_NO_PERMISSION)
    (reading,) = Collector(nvml).collect()
    assert m.GPU_TEMP not in reading.fields
    assert m.SM_CLOCK in reading.fields
    assert reading.errors == ["DCGM_FI_DEV_GPU_TEMP: nvmlDeviceGetTemperature: Insufficient Permissions"]


def test_a_lost_gpu_is_reported_with_its_last_identity_and_the_others_still_read() -> None:
    nvml = FakeNvml.from_profile("dgx-h100")
    collector = Collector(nvml)
    uuid = collector.collect()[3].uuid
    nvml.lose_gpu(3)
    readings = collector.collect()
    assert [r.index for r in readings if r.lost] == [3]
    assert readings[3].uuid == uuid
    assert readings[3].model_name == "NVIDIA H100 80GB HBM3"
    assert readings[3].fields == {}
    assert all(r.fields[m.POWER_USAGE] for r in readings if not r.lost)
    nvml.recover_gpu(3)
    assert not collector.collect()[3].lost


def test_a_gpu_lost_before_the_first_read_has_no_identity() -> None:
    nvml = FakeNvml.from_profile("dgx-h100")
    nvml.lose_gpu(5)
    readings = Collector(nvml).collect()
    assert readings[5].lost
    assert readings[5].uuid == ""
    assert len([r for r in readings if not r.lost]) == 7


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, "NVML Shared Library Not Found"),
        (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "Driver Not Loaded"),
    ],
)
def test_missing_library_or_driver_makes_nvml_unavailable_with_the_reason(error: int, message: str) -> None:
    nvml = FakeNvml.from_profile("t4")
    nvml.unload_driver(error)
    collector = Collector(nvml)
    with pytest.raises(NvmlUnavailable, match=message):
        collector.collect()
    assert collector.unavailable_reason == f"nvmlInit failed: {message}"


def test_init_is_retried_after_the_interval_then_recovers() -> None:
    clock = FakeClock()
    nvml = FakeNvml.from_profile("t4", clock=clock)
    nvml.unload_driver()
    collector = Collector(nvml, init_retry_interval_s=30, clock=clock)
    with pytest.raises(NvmlUnavailable):
        collector.collect()
    nvml.load_driver()
    clock.advance(29)
    with pytest.raises(NvmlUnavailable, match="Driver Not Loaded"):  # no new attempt yet
        collector.collect()
    clock.advance(1)
    (reading,) = collector.collect()
    assert reading.model_name == "Tesla T4"
    assert collector.unavailable_reason is None
    assert collector.driver_version == "515.105.01"


def test_a_driver_that_goes_away_while_running_is_detected_and_reinitialised() -> None:
    nvml = FakeNvml.from_profile("g5")
    collector = Collector(nvml, init_retry_interval_s=0)
    assert collector.collect()
    nvml.unload_driver()
    with pytest.raises(NvmlUnavailable, match="NVML stopped working"):
        collector.collect()
    with pytest.raises(NvmlUnavailable, match="Driver Not Loaded"):
        collector.collect()
    nvml.load_driver()
    assert collector.collect()[0].fields[m.POWER_MGMT_LIMIT] == 300.0


def test_the_real_pynvml_either_reads_gpus_or_says_why_not() -> None:
    collector = Collector(pynvml)
    try:
        readings = collector.collect()
    except NvmlUnavailable as exc:
        assert str(exc).startswith("nvmlInit failed: ")
    else:
        assert all(r.uuid.startswith("GPU-") for r in readings if not r.lost)
    finally:
        collector.close()


def test_xid_is_the_last_value_per_gpu() -> None:
    nvml = FakeNvml.from_profile("dgx-h100")
    collector = Collector(nvml)
    assert {r.fields[m.XID_ERRORS] for r in collector.collect()} == {0}
    nvml.inject_xid(1, 48)
    nvml.inject_xid(1, 79)
    nvml.inject_xid(6, 31)
    readings = collector.collect()
    assert [r.fields[m.XID_ERRORS] for r in readings] == [0, 79, 0, 0, 0, 0, 31, 0]
    assert collector.collect()[1].fields[m.XID_ERRORS] == 79


def test_ecc_and_remapped_rows_are_counted() -> None:
    nvml = FakeNvml.from_profile("dgx-h100")
    nvml.add_ecc_errors(2, corrected=3, uncorrected=1)
    nvml.add_remapped_rows(2, correctable=2, uncorrectable=1, failed=True)
    fields = Collector(nvml).collect()[2].fields
    assert fields[m.ECC_SBE_VOL_TOTAL] == fields[m.ECC_SBE_AGG_TOTAL] == 3
    assert fields[m.ECC_DBE_VOL_TOTAL] == fields[m.ECC_DBE_AGG_TOTAL] == 1
    assert (fields[m.CORRECTABLE_REMAPPED_ROWS], fields[m.UNCORRECTABLE_REMAPPED_ROWS]) == (2, 1)
    assert fields[m.ROW_REMAP_FAILURE] == 1


def test_mig_instances_are_read_per_gpu_instance() -> None:
    readings = Collector(FakeNvml.from_profile("a100-mig")).collect()
    assert len(readings) == 4
    for reading in readings:
        assert reading.fields[m.MIG_MODE] == 1
        assert m.GPU_UTIL not in reading.fields
        assert [i.gpu_instance_id for i in reading.mig_instances] == [3, 4, 5, 6]
        assert {i.profile for i in reading.mig_instances} == {"1g.20gb"}
        assert all(i.uuid.startswith("MIG-") for i in reading.mig_instances)
        assert {i.fields[m.FB_USED] for i in reading.mig_instances} == {12}


def test_a_mig_capable_gpu_with_mig_off_reports_mode_zero() -> None:
    (reading, *_) = Collector(FakeNvml.from_profile("dgx-h100")).collect()
    assert reading.fields[m.MIG_MODE] == 0
    assert reading.mig_instances == []


class _OldDriverNvml(FakeNvml):
    """A driver older than R510: no nvmlDeviceGetMemoryInfo_v2."""

    def nvmlDeviceGetMemoryInfo(self, handle, version=None):  # noqa: N802
        if version:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        return super().nvmlDeviceGetMemoryInfo(handle)


def test_memory_falls_back_to_the_v1_call_on_old_drivers() -> None:
    nvml = _OldDriverNvml([FakeNvml.from_profile("t4").gpus[0].model])
    (reading,) = Collector(nvml).collect()
    assert reading.fields[m.FB_USED] == 1032 + 388  # v1 counts reserved memory as used
    assert m.FB_RESERVED not in reading.fields
    assert reading.errors == []


def test_concurrent_collections_are_safe() -> None:
    collector = Collector(FakeNvml.from_profile("dgx-h100"))
    results: list[int] = []

    def work() -> None:
        for _ in range(20):
            results.append(len(collector.collect()))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [8] * 160


def test_close_releases_nvml_and_a_later_collect_initialises_again() -> None:
    nvml = FakeNvml.from_profile("t4")
    collector = Collector(nvml)
    collector.collect()
    collector.close()
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        nvml.nvmlDeviceGetCount()
    assert collector.collect()[0].model_name == "Tesla T4"


class _Recording:
    """Wraps an NVML object and notes the name of every attribute the collector uses."""

    def __init__(self, inner: FakeNvml) -> None:
        self._inner = inner
        self.used: set[str] = set()

    def __getattr__(self, name: str):
        self.used.add(name)
        return getattr(self._inner, name)


def test_every_nvml_function_the_collector_calls_exists_in_pynvml() -> None:
    for profile in ("dgx-h100", "a100-mig", "t4"):
        nvml = FakeNvml.from_profile(profile)
        recording = _Recording(nvml)
        collector = Collector(recording)
        collector.collect()
        nvml.inject_xid(0, 13)
        nvml.lose_gpu(0)
        collector.collect()
        collector.close()
        missing = {name for name in recording.used if not hasattr(pynvml, name)}
        assert not missing, f"{profile}: {missing}"
        assert "nvmlDeviceGetTotalEnergyConsumption" in recording.used
