"""Parsing dcgm-exporter output: the real capture, label variations, and malformed input."""

import pytest

from fleet.telemetry.exposition import parse_exposition

T4_A = "GPU-20c56d28-0da5-6d26-a36a-e7af1ce2586e"
T4_B = "GPU-9ef1b6d0-3643-5dd7-b823-c0ec20dcf2d5"


def test_datadog_t4_capture_parses_to_both_gpus_with_their_values(shared_fixtures):
    text = (shared_fixtures / "dcgm" / "datadog_dcgm_tesla_t4_serve_metrics.prom").read_text()
    result = parse_exposition(text)
    assert result.malformed == 0, result.errors
    assert set(result.readings) == {T4_A, T4_B}
    a = result.readings[T4_A]
    assert (a.index, a.model_name, a.hostname, a.driver_version) == (0, "Tesla T4", "424773df46e0", "460.106.00")
    assert (a.util_pct, a.temp_c, a.sm_clock_mhz, a.power_w) == (0.0, 25.0, 300.0, 8.969)
    assert (a.mem_used_mib, a.mem_free_mib, a.energy_mj, a.xid) == (0.0, 15109.0, 128996013.0, 0.0)
    b = result.readings[T4_B]
    assert (b.hostname, b.driver_version, b.power_limit_w) == ("551bdf382151", "470.182.03", 70.0)
    # Upstream notes FB_RESERVED was copied from FB_TOTAL in this capture; we take it as given.
    assert b.mem_reserved_mib == 15109.0


def test_every_dcgm_fixture_parses_without_malformed_lines(shared_fixtures):
    for path in sorted((shared_fixtures / "dcgm").glob("*.prom")):
        result = parse_exposition(path.read_text())
        assert result.malformed == 0, (path.name, result.errors)
        assert result.readings, path.name


def test_no_help_type_lines_pod_labels_and_float_or_integer_values():
    text = (
        'DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-aaaa1111-0000",device="nvidia1",modelName="NVIDIA H100 80GB HBM3",'
        'Hostname="node-7",container="trainer",namespace="research",pod="llm-0"} 87\n'
        'DCGM_FI_DEV_POWER_USAGE{gpu="1",UUID="GPU-aaaa1111-0000",device="nvidia1",modelName="NVIDIA H100 80GB HBM3",'
        'Hostname="node-7",container="trainer",namespace="research",pod="llm-0"} 612.25\n'
        'DCGM_FI_DEV_FB_USED{gpu="1",UUID="GPU-aaaa1111-0000",Hostname="node-7"} 7.5e4\n'
    )
    reading = parse_exposition(text).readings["GPU-aaaa1111-0000"]
    assert (reading.index, reading.util_pct, reading.power_w, reading.mem_used_mib) == (1, 87.0, 612.25, 75000.0)
    assert reading.model_name == "NVIDIA H100 80GB HBM3"


def test_escaped_label_values_and_timestamps():
    text = 'DCGM_FI_DEV_GPU_TEMP{UUID="GPU-bbbb2222-0000",gpu="0",pod="a\\"b\\\\c"} 61 1700000000000\n'
    reading = parse_exposition(text).readings["GPU-bbbb2222-0000"]
    assert reading.temp_c == 61.0


def test_mig_instances_are_kept_and_memory_summed():
    base = 'UUID="GPU-cccc3333-0000",gpu="0",modelName="NVIDIA A100-SXM4-80GB",GPU_I_PROFILE="3g.40gb"'
    text = (
        f'DCGM_FI_DEV_FB_USED{{{base},GPU_I_ID="1"}} 1000\n'
        f'DCGM_FI_DEV_FB_USED{{{base},GPU_I_ID="2"}} 2500\n'
        f'DCGM_FI_DEV_POWER_USAGE{{{base},GPU_I_ID="1"}} 312.5\n'
        f'DCGM_FI_DEV_POWER_USAGE{{{base},GPU_I_ID="2"}} 312.5\n'
    )
    reading = parse_exposition(text).readings["GPU-cccc3333-0000"]
    assert reading.mem_used_mib == 3500.0
    assert reading.power_w == 312.5  # device-wide, repeated per instance: taken once, not summed
    assert reading.mig_instances == {
        "1": {"mem_used_mib": 1000.0, "power_w": 312.5},
        "2": {"mem_used_mib": 2500.0, "power_w": 312.5},
    }


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-dddd4444-0000"} abc', "not a number"),
        ('DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-dddd4444-0000"', "unclosed"),
        ('DCGM_FI_DEV_GPU_UTIL{pod="x"} 5', "no UUID"),
        ('DCGM_FI_DEV_GPU_UTIL{gpu="zero",UUID="GPU-dddd4444-0000"} 5', "not an index"),
        ('DCGM_FI_DEV_GPU_UTIL{gpu=0,UUID="GPU-dddd4444-0000"} 5', "unparseable labels"),
        ('DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-dddd4444-0000"}', "expected a value"),
        ('DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-dddd4444-0000"} 1 2 3', "expected a value"),
        ("just garbage here", "not 'name value'"),
    ],
)
def test_malformed_lines_are_counted_and_skipped_never_fatal(line, reason):
    good = 'DCGM_FI_DEV_GPU_TEMP{gpu="0",UUID="GPU-eeee5555-0000"} 50'
    result = parse_exposition(f"{good}\n{line}\n{good}\n")
    assert result.malformed == 1
    assert reason in result.errors[0] and "line 2" in result.errors[0]
    assert result.readings["GPU-eeee5555-0000"].temp_c == 50.0


def test_nan_and_inf_are_no_data_not_values():
    text = 'DCGM_FI_DEV_POWER_USAGE{UUID="GPU-ffff6666-0000",gpu="0"} NaN\n'
    text += 'DCGM_FI_DEV_GPU_TEMP{UUID="GPU-ffff6666-0000",gpu="0"} +Inf\n'
    result = parse_exposition(text)
    assert result.malformed == 0
    assert result.readings == {}


def test_empty_and_binary_garbage_input():
    assert parse_exposition("").readings == {}
    result = parse_exposition("\x00\x01\x02{}}}\n\ufffd\ufffd")
    assert result.readings == {} and result.malformed == 2
