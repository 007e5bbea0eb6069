"""Cloud-neutral helpers of the adapters: continents from region names, GPU names, labels."""

import pytest

from fleet.catalog import GPU_SPECS
from fleet.choices import Continent
from fleet.inventory.base import continent_for_region, gpu_spec_find, labels_clean, memory_from_name


@pytest.mark.parametrize(
    ("region", "continent"),
    [
        ("us-east-1", Continent.NORTH_AMERICA),
        ("ca-central-1", Continent.NORTH_AMERICA),
        ("northamerica-northeast1", Continent.NORTH_AMERICA),
        ("us-central1", Continent.NORTH_AMERICA),
        ("eu-west-1", Continent.EUROPE),
        ("europe-west4", Continent.EUROPE),
        ("ap-northeast-1", Continent.ASIA),
        ("asia-southeast1", Continent.ASIA),
        ("ap-southeast-2", Continent.OCEANIA),
        ("australia-southeast1", Continent.OCEANIA),
        ("sa-east-1", Continent.SOUTH_AMERICA),
        ("southamerica-east1", Continent.SOUTH_AMERICA),
        ("me-central-1", Continent.MIDDLE_EAST),
        ("me-west1", Continent.MIDDLE_EAST),
        ("il-central-1", Continent.MIDDLE_EAST),
        ("af-south-1", Continent.AFRICA),
        ("africa-south1", Continent.AFRICA),
        ("mars-north-1", None),
        ("", None),
    ],
)
def test_continent_for_region(region, continent):
    assert continent_for_region(region) == continent


def test_gpu_spec_find_by_cloud_name_memory_or_nvml_name():
    assert gpu_spec_find("H100") == GPU_SPECS["H100"]
    assert gpu_spec_find("A100", 40960) == GPU_SPECS["A100-40GB"]
    assert gpu_spec_find("A100", 81920) == GPU_SPECS["A100-80GB"]
    assert gpu_spec_find("A100") is None
    assert gpu_spec_find("NVIDIA L40S") == GPU_SPECS["L40S"]
    assert gpu_spec_find("Radeon Pro V520", 8192) is None


def test_memory_from_name():
    assert memory_from_name("nvidia-a100-80gb") == 81920
    assert memory_from_name("nvidia-h200-141gb") == 141 * 1024
    assert memory_from_name("nvidia-tesla-v100") is None


def test_labels_clean_drops_what_labels_refuse():
    warnings: list[str] = []
    labels = labels_clean({"team": "ml", "": "empty key", "k" * 129: "long", "nul": "a\x00b"}, warnings)
    assert labels == {"team": "ml"}
    assert len(warnings) == 3
