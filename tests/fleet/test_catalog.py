"""The shipped GPU shapes agree with AWS's own instance-type data (moto's copy, in ../shared/fixtures)."""

import json

from fleet.catalog import GPU_SPECS, INSTANCE_TYPES
from fleet.choices import ProviderKind


def test_aws_instance_types_match_describe_instance_types_gpuinfo(shared_fixtures):
    records = json.loads((shared_fixtures / "aws" / "moto_instance_types_gpu_only.json").read_text())
    checked = 0
    for name, itype in INSTANCE_TYPES.items():
        if itype.provider != ProviderKind.AWS:
            continue
        gpus = records[name]["GpuInfo"]["Gpus"]
        assert len(gpus) == 1, name
        spec = GPU_SPECS[itype.gpu]
        assert gpus[0]["Count"] == itype.gpu_count, name
        assert gpus[0]["MemoryInfo"]["SizeInMiB"] == spec.memory_mib, name
        assert gpus[0]["Name"] in spec.key, name
        checked += 1
    assert checked >= 10


def test_gcp_a2_highgpu_1g_matches_the_machine_type_accelerators(shared_fixtures):
    path = shared_fixtures / "gcp" / "cluster-toolkit_machineTypes_get_a2-highgpu-1g_and_t2d-standard-8.json"
    machine = next(m for m in json.loads(path.read_text()) if m["name"] == "a2-highgpu-1g")
    accel = machine["accelerators"][0]
    assert accel["guestAcceleratorCount"] == INSTANCE_TYPES["a2-highgpu-1g"].gpu_count
    assert accel["guestAcceleratorType"] == "nvidia-tesla-a100"
    assert INSTANCE_TYPES["a2-highgpu-1g"].gpu.startswith("A100")


def test_nvml_names_and_power_limits_match_nvidia_smi_captures(shared_fixtures):
    smi = shared_fixtures / "nvidia_smi"
    a100 = (smi / "telegraf_a100-sxm4-v12.xml").read_text()
    assert f"<product_name>{GPU_SPECS['A100-80GB'].nvml_name}</product_name>" in a100
    assert "<current_power_limit>500.00 W" in a100 and GPU_SPECS["A100-80GB"].power_limit_w == 500
    a10g = (smi / "telegraf_a10g.xml").read_text()
    assert f"<product_name>{GPU_SPECS['A10G'].nvml_name}</product_name>" in a10g
    assert GPU_SPECS["A10G"].power_limit_w == 300 and "300.00 W" in a10g
    t4 = (smi / "telegraf_tesla-t4.xml").read_text()
    assert f"<product_name>{GPU_SPECS['T4'].nvml_name}</product_name>" in t4 and "70.00 W" in t4
    h100 = next(smi.glob("nvgpuexp_*h100*")).read_text()
    assert GPU_SPECS["H100"].nvml_name in h100
