"""The hand-checked placement scenario: a 2 TB dataset in S3 us-east-1 and an 8-GPU, 10-hour H100 job.

Capacity: one on-prem DGX H100 (8 GPUs) in dc-1, and cloud offers loaded as InstancePrice rows:
AWS p5.48xlarge in us-east-1 and us-west-2 ($55.04/h on-demand, us-east-1 also $30.00/h spot), GCP
a3-highgpu-8g in us-central1 ($88.25/h). Egress out of AWS: $0.02/GB to another region of the continent,
$0.09/GB to another cloud or on-prem.

By hand, for that job:
- on-prem dc-1: $/GPU-h = 26 280 / (36 × 730) + 876 / 8760 = 1.00 + 0.10 = 1.10 amortisation and operations,
  + energy 700 W × 0.7 (no measured power) × $0.20/kWh × PUE 1.25 / 1000 = 0.1225 → 1.2225 $/GPU-h;
  compute 8 × 10 × 1.2225 = $97.80; egress 2 000 GB × 0.09 = $180.00; total $277.80 (data moves in 1 600 s).
- AWS us-east-1 p5.48xlarge: 10 × 55.04 = $550.40, no egress: $550.40.
- AWS us-west-2 p5.48xlarge: $550.40 + 2 000 × 0.02 = $40.00: $590.40.
- GCP us-central1 a3-highgpu-8g: 10 × 88.25 = $882.50 + $180.00: $1 062.50.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import EgressRate, InstancePrice, OnPremCostModel
from fleet.choices import Continent, NodeLifecycle
from fleet.models import Node, Project, Site, Team
from scheduler.models import Dataset, Job
from tests.factories import GPUFactory, NodeFactory, OnPremProviderFactory, ProjectFactory, ProviderFactory

# The clouds at the wire, shared with the inventory tests: moto's EC2/S3 and the Compute Engine emulator.
from tests.fleet.inventory.conftest import aws, gce  # noqa: F401

PRICE_DAY = date(2025, 1, 1)
TB2 = 2 * 10**12


@dataclass
class Scenario:
    team: Team
    project: Project
    site: Site
    node: Node
    dataset: Dataset

    def job(self, **kwargs) -> Job:
        """An 8-GPU, 10-hour H100 job on the 2 TB dataset (kwargs override)."""
        datasets = kwargs.pop("datasets", [self.dataset])
        fields = {
            "name": "train-llm",
            "team": self.team,
            "project": self.project,
            "gpu_count": 8,
            "gpu_model": "H100",
            "expected_hours": Decimal("10"),
        }
        fields.update(kwargs)
        job = Job.objects.create(**fields)
        job.datasets.set(datasets)
        return job


def onprem_node(site: Site, *, name: str, gpus: int = 8) -> Node:
    """A DGX-like on-prem node with ``gpus`` H100s, seen just now."""
    node = NodeFactory(
        site=site,
        name=name,
        external_id="",
        instance_type="dgx-h100",
        lifecycle=NodeLifecycle.OWNED,
        last_seen=timezone.now(),
    )
    for index in range(gpus):
        GPUFactory(node=node, index=index)
    return node


@pytest.fixture
def scenario(db) -> Scenario:
    """The hand-checked fleet, prices and dataset (see the module docstring)."""
    onprem = OnPremProviderFactory(name="owned")
    site = Site.objects.create(
        provider=onprem,
        name="dc-1",
        region="ashburn",
        continent=Continent.NORTH_AMERICA,
        electricity_usd_per_kwh=Decimal("0.20"),
        pue=Decimal("1.25"),
    )
    OnPremCostModel.objects.create(
        site=site,
        purchase_usd_per_gpu=Decimal("26280"),
        amortisation_months=36,
        ops_usd_per_gpu_year=Decimal("876"),
        effective_from=PRICE_DAY,
    )
    node = onprem_node(site, name="dgx-1")
    ProviderFactory(name="aws-main", regions=["us-east-1", "us-west-2"])
    ProviderFactory(name="gcp-main", kind="gcp", account_id="fleetdeck-ml", credential_ref="adc")
    for region in ("us-east-1", "us-west-2"):
        InstancePrice.objects.create(
            provider_kind="aws",
            region=region,
            instance_type="p5.48xlarge",
            gpu_model="H100",
            gpu_count=8,
            on_demand_usd_per_h=Decimal("55.04"),
            spot_usd_per_h=Decimal("30.00") if region == "us-east-1" else None,
            effective_from=PRICE_DAY,
        )
    InstancePrice.objects.create(
        provider_kind="gcp",
        region="us-central1",
        instance_type="a3-highgpu-8g",
        gpu_model="H100",
        gpu_count=8,
        on_demand_usd_per_h=Decimal("88.25"),
        effective_from=PRICE_DAY,
    )
    for kind in ("aws", "gcp", "onprem"):
        for location_class, rate in (
            ("same-continent", "0.02"),
            ("other-continent", "0.05"),
            ("other-cloud", "0.09"),
            ("same-region", "0.01"),
            ("same-zone", "0"),
        ):
            EgressRate.objects.create(
                provider_kind=kind,
                location_class=location_class,
                usd_per_gb=Decimal(rate),
                effective_from=PRICE_DAY,
            )
    team = Team.objects.create(name="Research", slug="research")
    project = ProjectFactory(team=team, name="LLM", slug="llm")
    dataset = Dataset.objects.create(
        name="corpus-2tb", uri="s3://corpus/2tb/", provider_kind="aws", region="us-east-1", size_bytes=TB2
    )
    return Scenario(team=team, project=project, site=site, node=node, dataset=dataset)


@pytest.fixture
def worker(django_capture_on_commit_callbacks):
    """``with worker():`` runs the tasks a request queues on commit in-process, as a worker would (Celery eager)."""
    from contextlib import contextmanager

    from config.celery import app as celery_app

    @contextmanager
    def run():
        before = celery_app.conf.task_always_eager
        celery_app.conf.task_always_eager = True
        try:
            with django_capture_on_commit_callbacks(execute=True):
                yield
        finally:
            celery_app.conf.task_always_eager = before

    return run
