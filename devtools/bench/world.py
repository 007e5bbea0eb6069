"""Seeded synthetic worlds for the scheduler benchmarks: sites, nodes, the offer catalogue, datasets, jobs.

Cloud prices are the us-east-1 / us-central1 rows of the shared SkyPilot catalogue excerpts
(fixtures/prices/, GCP = VM row + accelerator row); other regions scale them (eu-west-2 ×1.3 as the p5 row
there shows, europe-west4 ×1.1, us-west-2 ×1.0). On-prem $/GPU-h levels are plausible amortisation + energy
figures, not measurements. Egress rates follow the public list prices in fixtures/README.md.
"""

from __future__ import annotations

import random
from decimal import Decimal

from scheduler.optimizer import DatasetIn, JobIn, NodeIn, OfferIn

GB = 10**9
LINK_BYTES_PER_S = 10 * 10**9 / 8  # 10 Gbit/s between any two locations

CONTINENT = {
    "us-east-1": "na",
    "us-west-2": "na",
    "eu-west-2": "eu",
    "us-central1": "na",
    "europe-west4": "eu",
    "dc-1": "na",
    "dc-2": "eu",
    "dc-3": "na",
}
REGION_FACTOR = {
    "us-east-1": "1.0",
    "us-west-2": "1.0",
    "eu-west-2": "1.3",
    "us-central1": "1.0",
    "europe-west4": "1.1",
}
CLOUD_REGIONS = {"aws": ("us-east-1", "us-west-2", "eu-west-2"), "gcp": ("us-central1", "europe-west4")}
SITES = ("dc-1", "dc-2", "dc-3")

# (instance type, GPU key, memory MiB, GPUs, on-demand $/h, spot $/h or None) in the base region.
CATALOGUE = {
    "aws": (
        ("p5.48xlarge", "H100", 81920, 8, "55.04", "10.2397"),
        ("p5.4xlarge", "H100", 81920, 1, "6.88", None),
        ("p4de.24xlarge", "A100-80GB", 81920, 8, "27.44705", "8.6505"),
        ("p4d.24xlarge", "A100-40GB", 40960, 8, "21.957642", "2.4655"),
        ("g5.xlarge", "A10G", 22888, 1, "1.006", "0.4246"),
        ("g5.48xlarge", "A10G", 22888, 8, "16.288", "4.5408"),
        ("g4dn.xlarge", "T4", 16384, 1, "0.526", "0.2"),
    ),
    "gcp": (
        ("a3-highgpu-8g", "H100", 81920, 8, "43.06615", "26.83013"),
        ("a2-highgpu-1g", "A100-40GB", 40960, 1, "3.673385", "1.80385"),
        ("a2-highgpu-8g", "A100-40GB", 40960, 8, "29.38708", "14.4308"),
        ("g2-standard-4", "L4", 22888, 1, "0.70683", "0.28184"),
    ),
}
# On-prem servers: (GPU key, memory MiB, GPUs per node, $/GPU-h levels: amortisation + expected energy).
ONPREM_SHAPES = (
    ("H100", 81920, 8, ("1.62", "1.85", "2.10")),
    ("A100-80GB", 81920, 8, ("0.95", "1.10", "1.30")),
    ("L40S", 45776, 4, ("0.55", "0.70")),
    ("T4", 16384, 2, ("0.12", "0.16")),
)
JOB_GPUS = (("H100", 30), ("A100-80GB", 20), ("A100-40GB", 10), ("A10G", 10), ("T4", 10), ("L40S", 5), (None, 15))


class BenchNetwork:
    """Egress by location class, per decimal GB: AWS inter-region $0.02, AWS to the internet $0.09; GCP
    inter-region $0.02 on a continent and $0.05 across, GCP to the internet $0.12; on-prem outbound $0
    (flat-rate transit). A 10 Gbit/s link everywhere."""

    def egress_usd(self, src: str, dst: str, size_bytes: int) -> Decimal:
        """$ to move ``size_bytes`` from ``src`` to ``dst``."""
        if src == dst:
            return Decimal(0)
        (src_kind, src_region), (dst_kind, dst_region) = src.split(":", 1), dst.split(":", 1)
        gb = Decimal(size_bytes) / GB
        if src_kind == "onprem":
            return Decimal(0)
        if src_kind == dst_kind:
            across = CONTINENT[src_region] != CONTINENT[dst_region]
            return gb * (Decimal("0.05") if across and src_kind == "gcp" else Decimal("0.02"))
        return gb * (Decimal("0.09") if src_kind == "aws" else Decimal("0.12"))

    def transfer_s(self, src: str, dst: str, size_bytes: int) -> float:
        """Seconds to move ``size_bytes`` over the link."""
        return 0.0 if src == dst else size_bytes / LINK_BYTES_PER_S


class BlindNetwork(BenchNetwork):
    """The egress-blind baseline's view: moving data is free (cheapest compute wins)."""

    def egress_usd(self, src: str, dst: str, size_bytes: int) -> Decimal:
        """Always $0."""
        return Decimal(0)


def bench_offers() -> list[OfferIn]:
    """The offer catalogue: every catalogue row in every region of its cloud, on-demand and spot."""
    offers = []
    for kind, rows in CATALOGUE.items():
        for region in CLOUD_REGIONS[kind]:
            factor = Decimal(REGION_FACTOR[region])
            for instance_type, gpu, memory, count, on_demand, spot in rows:
                for price, is_spot in ((on_demand, False), (spot, True)):
                    if price is not None:
                        offers.append(
                            OfferIn(
                                provider_kind=kind,
                                region=region,
                                location=f"{kind}:{region}",
                                instance_type=instance_type,
                                gpu_model=gpu,
                                gpu_memory_mib=memory,
                                gpu_count=count,
                                usd_per_h=(Decimal(price) * factor).quantize(Decimal("0.000001")),
                                spot=is_spot,
                            )
                        )
    return offers


def bench_nodes(count: int, rng: random.Random, *, busy: float = 0.5) -> list[NodeIn]:
    """``count`` nodes: 80 % on-prem servers over three sites, 20 % running cloud instances with free GPUs."""
    nodes = []
    cloud_rows = [(kind, row) for kind, rows in CATALOGUE.items() for row in rows if row[3] == 8]
    for i in range(1, count + 1):
        if rng.random() < 0.8:
            gpu, memory, size, levels = rng.choice(ONPREM_SHAPES)
            site = rng.choice(SITES)
            kind, region, usd = "onprem", site, Decimal(rng.choice(levels))
        else:
            kind, (_, gpu, memory, size, on_demand, _) = rng.choice(cloud_rows)
            region = rng.choice(CLOUD_REGIONS[kind])
            usd = (Decimal(on_demand) * Decimal(REGION_FACTOR[region]) / size).quantize(Decimal("0.000001"))
        free = 0 if rng.random() < busy else rng.choice([g for g in (1, 2, 4, 8) if g <= size])
        nodes.append(
            NodeIn(
                id=i,
                name=f"node-{i:05d}",
                location=f"{kind}:{region}",
                provider_kind=kind,
                region=region,
                gpu_model=gpu,
                gpu_memory_mib=memory,
                free_gpus=free,
                usd_per_gpu_h=usd,
            )
        )
    return nodes


def bench_datasets(count: int, rng: random.Random, *, min_gb: float, max_gb: float) -> dict[int, DatasetIn]:
    """``count`` datasets, log-uniform in size, spread over every cloud region and site."""
    locations = [f"{k}:{r}" for k, regions in CLOUD_REGIONS.items() for r in regions]
    locations += [f"onprem:{s}" for s in SITES]
    datasets = {}
    for i in range(1, count + 1):
        size_gb = min_gb * (max_gb / min_gb) ** rng.random()
        datasets[i] = DatasetIn(id=i, name=f"ds-{i}", size_bytes=int(size_gb * GB), location=rng.choice(locations))
    return datasets


def bench_jobs(count: int, rng: random.Random, dataset_ids: list[int], *, max_hours: int = 48) -> list[JobIn]:
    """``count`` pending jobs with mixed GPU needs, 0–3 inputs, three priority tiers, some residency limits."""
    models, weights = zip(*JOB_GPUS, strict=True)
    all_regions = list(CONTINENT)
    jobs = []
    for i in range(1, count + 1):
        model = rng.choices(models, weights)[0]
        residency = frozenset(rng.sample(all_regions, 4)) if rng.random() < 0.1 else frozenset()
        jobs.append(
            JobIn(
                id=i,
                name=f"job-{i}",
                gpu_count=rng.choice((1, 1, 2, 4, 8, 8)),
                gpu_model=model,
                min_gpu_memory_mib=40960 if model is None else None,
                expected_hours=Decimal(rng.randint(1, max_hours * 4)) / 4,
                dataset_ids=tuple(rng.sample(dataset_ids, rng.choice((0, 1, 1, 2, 3)))),
                priority=rng.choice((0, 0, 0, 1, 2)),
                spot_allowed=rng.random() < 0.3,
                allowed_regions=residency,
                order=i,
            )
        )
    return jobs
