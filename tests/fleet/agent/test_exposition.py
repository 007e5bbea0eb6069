"""The /metrics text against dcgm-exporter: names, types, help, labels, units and number formats."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from devtools.fake_nvml import FakeClock, FakeNvml
from fleet.agent import exposition as m
from fleet.agent.collector import Collector
from fleet.agent.exposition import METRICS_BY_NAME, render_metrics
from fleet.agent.readings import GpuReading
from tests.fleet.agent.helpers import Exposition, parse_exposition

REQUIRED = {
    m.SM_CLOCK,
    m.MEM_CLOCK,
    m.GPU_TEMP,
    m.POWER_USAGE,
    m.TOTAL_ENERGY_CONSUMPTION,
    m.GPU_UTIL,
    m.MEM_COPY_UTIL,
    m.FB_FREE,
    m.FB_USED,
    m.XID_ERRORS,
    m.ECC_SBE_VOL_TOTAL,
    m.ECC_DBE_VOL_TOTAL,
    m.POWER_MGMT_LIMIT,
}
PLACE_LABELS = {"pci_bus_id", "GPU_I_PROFILE", "GPU_I_ID"}


def scrape(nvml: FakeNvml, hostname: str = "node-a") -> Exposition:
    collector = Collector(nvml, hostname=hostname)
    return parse_exposition(render_metrics(collector.collect(), hostname, driver_version=collector.driver_version))


def every_profile() -> list[Exposition]:
    return [scrape(FakeNvml.from_profile(name, seed=3)) for name in ("dgx-h100", "a100-mig", "g5", "t4")]


def dcgm_counter_definitions(fixtures: Path) -> dict[str, tuple[str, str]]:
    """name -> (type, help) from default-counters.csv, its commented-out field lines included."""
    definitions = {}
    for line in (fixtures / "dcgm" / "default-counters.csv").read_text().splitlines():
        line = line.lstrip("# ").strip()
        if not line.startswith("DCGM_"):
            continue
        name, prom_type, help_text = (part.strip() for part in line.split(",", 2))
        definitions[name] = (prom_type, help_text)
    return definitions


def test_emits_the_required_dcgm_fields() -> None:
    emitted = set().union(*(exposition.names() for exposition in every_profile()))
    assert emitted >= REQUIRED


def test_types_and_help_are_those_of_dcgm_exporter_default_counters(shared_fixtures: Path) -> None:
    definitions = dcgm_counter_definitions(shared_fixtures)
    checked = set()
    for exposition in every_profile():
        for name in exposition.names() & definitions.keys():
            assert (exposition.types[name], exposition.helps[name]) == definitions[name], name
            checked.add(name)
    assert checked >= REQUIRED - {m.POWER_MGMT_LIMIT}


def test_types_match_the_datadog_dcgm_exporter_capture(shared_fixtures: Path) -> None:
    capture = parse_exposition((shared_fixtures / "dcgm" / "datadog_dcgm_tesla_t4_serve_metrics.prom").read_text())
    common = set()
    for exposition in every_profile():
        for name in exposition.names() & capture.names():
            assert exposition.types[name] == capture.types[name], name
            common.add(name)
    assert {m.POWER_USAGE, m.TOTAL_ENERGY_CONSUMPTION, m.POWER_MGMT_LIMIT, m.XID_ERRORS} <= common


def test_labels_are_those_of_the_datadog_capture_in_the_same_order(shared_fixtures: Path) -> None:
    prom = (shared_fixtures / "dcgm" / "datadog_dcgm_tesla_t4_serve_metrics.prom").read_text()
    capture = parse_exposition(prom)
    first = next(s for s in capture.samples if s.name == m.SM_CLOCK)
    # DCGM_FI_PROCESS_NAME comes from a custom counter in that deployment, not from the default set.
    expected = set(first.labels) - {"DCGM_FI_PROCESS_NAME"}
    capture_order = re.findall(r"([A-Za-z_]+)=", prom.splitlines()[2])
    collector = Collector(FakeNvml.from_profile("t4"), hostname="node-a")
    text = render_metrics(collector.collect(), "node-a", driver_version=collector.driver_version)
    ours = parse_exposition(text)
    for sample in ours.samples:
        if sample.name.startswith("DCGM_"):
            assert set(sample.labels) - PLACE_LABELS == expected, sample
    our_order = [k for k in re.findall(r"([A-Za-z_]+)=", text.splitlines()[2]) if k not in PLACE_LABELS]
    assert our_order == [k for k in capture_order if k in our_order]


def test_units_and_number_formats_follow_dcgm_exporter(shared_fixtures: Path) -> None:
    capture = parse_exposition((shared_fixtures / "dcgm" / "datadog_dcgm_tesla_t4_serve_metrics.prom").read_text())
    nvml = FakeNvml.from_profile("t4")
    nvml.set_load(0, power_w=35.5, memory_used_mib=2048, sm_clock_mhz=1590, temp_c=61, util_pct=None)
    ours = scrape(nvml)
    assert ours.select(m.POWER_USAGE)[0].value == "35.500000"  # W, from NVML's 35500 mW
    assert ours.select(m.POWER_MGMT_LIMIT)[0].value == "70.000000"
    assert ours.value(m.FB_USED) == 2048  # MiB
    assert ours.value(m.FB_RESERVED) == 388
    assert ours.value(m.FB_FREE) == 15360 - 388 - 2048
    assert ours.select(m.SM_CLOCK)[0].value == "1590"  # MHz, an integer as dcgm-exporter writes it
    assert ours.value(m.GPU_TEMP) == 61
    for name in (m.POWER_USAGE, m.POWER_MGMT_LIMIT, m.SM_CLOCK, m.FB_FREE, m.TOTAL_ENERGY_CONSUMPTION):
        shape = re.compile(r"^\d+\.\d{6}$") if "." in capture.select(name)[0].value else re.compile(r"^\d+$")
        assert shape.match(ours.select(name)[0].value), name


def test_energy_is_a_millijoule_counter_of_power_over_time() -> None:
    clock = FakeClock()
    nvml = FakeNvml.from_profile("t4", clock=clock)
    nvml.set_load(0, power_w=35.5)
    collector = Collector(nvml, hostname="node-a")
    before = collector.collect()[0].fields[m.TOTAL_ENERGY_CONSUMPTION]
    clock.advance(10)
    after = collector.collect()[0].fields[m.TOTAL_ENERGY_CONSUMPTION]
    assert after - before == pytest.approx(35.5 * 10 * 1000, abs=1)


def test_mig_gpus_have_per_instance_series_like_dcgm_exporter() -> None:
    ours = scrape(FakeNvml.from_profile("a100-mig"))
    dcgm = [s for s in ours.samples if s.name.startswith("DCGM_")]
    assert all(s.labels["GPU_I_PROFILE"] == "1g.20gb" for s in dcgm)
    assert {s.labels["GPU_I_ID"] for s in dcgm} == {"3", "4", "5", "6"}
    assert {s.labels["gpu"] for s in dcgm} == {"0", "1", "2", "3"}
    # Framebuffer values are the instance's own; device-wide ones repeat per instance.
    assert {float(s.value) for s in ours.select(m.FB_USED)} == {12}
    assert {float(s.value) for s in ours.select(m.FB_FREE)} == {19968 - 12}
    assert len(ours.select(m.POWER_USAGE, gpu="0")) == 4
    assert {float(s.value) for s in ours.select(m.MIG_MODE)} == {1}
    # NVML has no utilisation for a GPU in MIG mode (nvidia-smi shows N/A), so there is no series.
    assert not ours.select(m.GPU_UTIL)
    assert all("GPU_I_ID" not in s.labels for s in ours.select(m.GPU_LOST))


def test_no_two_series_share_a_name_and_label_set() -> None:
    for exposition in every_profile():
        keys = Counter((s.name, tuple(sorted(s.labels.items()))) for s in exposition.samples)
        assert max(keys.values()) == 1


def test_every_metric_has_help_and_type_before_its_samples() -> None:
    text = render_metrics(Collector(FakeNvml.from_profile("dgx-h100")).collect(), "node-a")
    seen_type = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            seen_type.add(line.split()[2])
        elif not line.startswith("#"):
            assert line.split("{")[0] in seen_type
    assert seen_type <= METRICS_BY_NAME.keys()


def test_label_values_are_escaped() -> None:
    reading = GpuReading(0, "GPU-1", 'odd "model"\\x', fields={m.GPU_TEMP: 40})
    parsed = parse_exposition(render_metrics([reading], "host\nname"))
    (sample,) = parsed.select(m.GPU_TEMP)
    assert sample.labels["modelName"] == 'odd \\"model\\"\\\\x'
    assert sample.labels["Hostname"] == "host\\nname"


def test_no_gpus_render_an_empty_body() -> None:
    assert render_metrics([], "node-a") == ""
