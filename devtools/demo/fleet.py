"""A plausible, deterministic demo fleet: on-prem data centres and AWS/GCP regions with real GPU shapes."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from billing.models import Commitment, LedgerDay, LedgerEntry, LedgerNodeDay
from devtools.demo.scheduler import DEMO_DATASETS
from fleet.catalog import GPU_SPECS, INSTANCE_TYPES
from fleet.choices import Continent, GpuSliceKind, HealthEventKind, NodeLifecycle, NodeState, ProviderKind
from fleet.models import GPU, GpuSlice, HealthEvent, Node, Project, Provider, Site, Team
from scheduler.models import Dataset, Job

DEMO_SIMULATOR_URL = "http://127.0.0.1:9500"
DEMO_PROVIDERS = (
    # name, kind, account id, credential reference
    ("onprem", ProviderKind.ONPREM, "", ""),
    ("aws-prod", ProviderKind.AWS, "123456789012", "profile:fleetdeck"),
    ("gcp-ml", ProviderKind.GCP, "fleetdeck-ml", "adc"),
)


@dataclass(frozen=True)
class DemoSite:
    provider: str
    name: str
    short: str
    region: str
    zone: str
    continent: Continent
    weight: int  # share of the demo's nodes
    types: tuple[tuple[str, int], ...]  # (instance type, relative frequency)
    electricity_usd_per_kwh: Decimal | None = None
    pue: Decimal | None = None
    # On-prem: the operator's grid carbon intensity (gCO2e/kWh). The demo takes the nearest grid's figure from the
    # shipped dataset (billing/data/grid_intensity.csv, Google's 2023 values): Amsterdam ≈ europe-west4 (Eemshaven,
    # the Netherlands) 236; San Jose ≈ us-west2 (Los Angeles, the same Californian grid) 198.
    carbon_g_per_kwh: Decimal | None = None


DEMO_SITES = (
    DemoSite(
        "onprem",
        "dc-ams1",
        "ams1",
        "amsterdam",
        "hall-a",
        Continent.EUROPE,
        22,
        (("dgx-h100", 3), ("hgx-a100-80gb", 4), ("l40s-4x", 2), ("t4-inference-2x", 2)),
        Decimal("0.21"),
        Decimal("1.35"),
        carbon_g_per_kwh=Decimal("236"),
    ),
    DemoSite(
        "onprem",
        "dc-sjc1",
        "sjc1",
        "san-jose",
        "row-4",
        Continent.NORTH_AMERICA,
        14,
        (("dgx-h100", 4), ("hgx-a100-80gb", 2), ("l40s-4x", 1)),
        Decimal("0.16"),
        Decimal("1.25"),
        carbon_g_per_kwh=Decimal("198"),
    ),
    DemoSite(
        "aws-prod",
        "aws-us-east-1",
        "use1",
        "us-east-1",
        "us-east-1a",
        Continent.NORTH_AMERICA,
        24,
        (
            ("p5.48xlarge", 2),
            ("p4d.24xlarge", 2),
            ("g5.xlarge", 5),
            ("g5.12xlarge", 2),
            ("g6.xlarge", 4),
            ("g4dn.xlarge", 4),
        ),
    ),
    DemoSite(
        "aws-prod",
        "aws-us-west-2",
        "usw2",
        "us-west-2",
        "us-west-2b",
        Continent.NORTH_AMERICA,
        10,
        (("p4de.24xlarge", 1), ("g5.xlarge", 3), ("g6e.xlarge", 2), ("g4dn.xlarge", 2)),
    ),
    DemoSite(
        "aws-prod",
        "aws-eu-west-1",
        "euw1",
        "eu-west-1",
        "eu-west-1a",
        Continent.EUROPE,
        8,
        (("g5.xlarge", 3), ("g4dn.xlarge", 2), ("p4d.24xlarge", 1)),
    ),
    DemoSite(
        "gcp-ml",
        "gcp-us-central1",
        "usc1",
        "us-central1",
        "us-central1-a",
        Continent.NORTH_AMERICA,
        14,
        (("a3-highgpu-8g", 2), ("a2-highgpu-1g", 4), ("a2-highgpu-8g", 1), ("g2-standard-4", 5)),
    ),
    DemoSite(
        "gcp-ml",
        "gcp-europe-west4",
        "euw4",
        "europe-west4",
        "europe-west4-a",
        Continent.EUROPE,
        8,
        (("a2-ultragpu-8g", 1), ("g2-standard-4", 3), ("g2-standard-48", 1)),
    ),
)

DEMO_TEAMS = {
    "research": ("Research", (("llm-pretrain", "LLM pretraining"), ("vision", "Vision models"))),
    "inference": ("Inference", (("chat-serving", "Chat serving"), ("batch-embed", "Batch embeddings"))),
    "platform": ("Platform", (("ci-gpu", "GPU CI"),)),
    "data": ("Data", (("feature-etl", "Feature ETL"),)),
}


def _weighted(rng: random.Random, pairs):
    items, weights = zip(*pairs, strict=True)
    return rng.choices(items, weights=weights, k=1)[0]


def _state(rng: random.Random, onprem: bool) -> NodeState:
    roll = rng.random()
    if roll < 0.03:
        return NodeState.UNREACHABLE
    if roll < 0.08:
        return NodeState.STOPPED
    if roll < 0.10 and not onprem:
        return NodeState.TERMINATED
    return NodeState.RUNNING


@transaction.atomic
def demo_fleet_seed(*, nodes: int = 300, seed: int = 7, simulator_url: str = DEMO_SIMULATOR_URL) -> dict[str, int]:
    """Create the demo providers, sites, teams, projects, ``nodes`` nodes and their GPUs; return the counts.

    Deterministic for a given ``seed``. Refuses to run twice: call ``demo_fleet_delete`` first. Nodes report
    through the fleet simulator at ``simulator_url`` (``manage.py simulate``).
    """
    if Provider.objects.filter(name__in=[p[0] for p in DEMO_PROVIDERS]).exists():
        raise ValueError("The demo fleet is already seeded; delete it first (seed_demo --reset).")
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not secrets
    now = timezone.now().replace(microsecond=0)

    providers = {
        name: Provider.objects.create(
            name=name,
            kind=kind,
            account_id=account,
            credential_ref=cred,
            # AWS inventory (and launching) needs its regions; GCP's empty list means every zone.
            regions=sorted({s.region for s in DEMO_SITES if s.provider == name}) if kind == ProviderKind.AWS else [],
        )
        for name, kind, account, cred in DEMO_PROVIDERS
    }
    sites = {
        s.name: Site.objects.create(
            provider=providers[s.provider],
            name=s.name,
            region=s.region,
            zone=s.zone,
            continent=s.continent,
            electricity_usd_per_kwh=s.electricity_usd_per_kwh,
            pue=s.pue,
            carbon_g_per_kwh=s.carbon_g_per_kwh,
        )
        for s in DEMO_SITES
    }
    teams, projects = {}, []
    for slug, (name, team_projects) in DEMO_TEAMS.items():
        teams[slug] = Team.objects.create(name=name, slug=slug)
        projects += [
            Project.objects.create(team=teams[slug], name=p_name, slug=p_slug) for p_slug, p_name in team_projects
        ]

    total_weight = sum(s.weight for s in DEMO_SITES)
    node_rows, gpu_plan = [], []
    for demo_site in DEMO_SITES:
        site = sites[demo_site.name]
        onprem = demo_site.provider == "onprem"
        for n in range(max(1, round(nodes * demo_site.weight / total_weight))):
            itype = INSTANCE_TYPES[_weighted(rng, demo_site.types)]
            project = rng.choice(projects)
            state = _state(rng, onprem)
            name = f"{demo_site.short}-{itype.name.split('.')[0]}-{n + 1:03d}"
            lifecycle = (
                NodeLifecycle.OWNED
                if onprem
                else _weighted(
                    rng, ((NodeLifecycle.ON_DEMAND, 6), (NodeLifecycle.SPOT, 3), (NodeLifecycle.RESERVED, 1))
                )
            )
            if demo_site.provider == "aws-prod":
                external_id = f"i-{rng.getrandbits(68):017x}"
            elif demo_site.provider == "gcp-ml":
                external_id = str(rng.randrange(10**18, 10**19))
            else:
                external_id = ""
            node_rows.append(
                Node(
                    site=site,
                    name=name,
                    external_id=external_id,
                    instance_type=itype.name,
                    lifecycle=lifecycle,
                    state=state,
                    team=project.team,
                    project=project,
                    labels={"env": rng.choice(["prod", "prod", "staging"]), "owner": project.team.slug},
                    telemetry_url=f"{simulator_url.rstrip('/')}/nodes/{name}/metrics",
                    token_ref="env:FLEETDECK_AGENT_TOKEN",  # noqa: S106 - a reference, not a token
                    launched_at=now - timedelta(hours=rng.randrange(2, 24 * 400)),
                )
            )
            gpu_plan.append(itype)
    created = Node.objects.bulk_create(node_rows)
    gpus = []
    for node, itype in zip(created, gpu_plan, strict=True):
        spec = GPU_SPECS[itype.gpu]
        gpus += [
            GPU(
                node=node,
                index=i,
                uuid=f"GPU-{uuid.UUID(int=rng.getrandbits(128))}",
                model=spec.nvml_name,
                memory_mib=spec.memory_mib,
                power_limit_w=spec.power_limit_w,
            )
            for i in range(itype.gpu_count)
        ]
    GPU.objects.bulk_create(gpus, batch_size=2000)
    capacity = demo_capacity_seed(now=now)
    return {
        "providers": len(providers),
        "sites": len(sites),
        "teams": len(teams),
        "nodes": len(created) + capacity["nodes"],
        "gpus": len(gpus) + capacity["gpus"],
    }


# The MIG-partitioned H100 of the demo: (GPU_I_ID, profile, team slug or None for an idle slice). 3 + 2 + 1 + 1
# of the GPU's 7 compute slices: Research holds 3/7 of its hour, Inference 3/7, and 1/7 is idle $ of the node's
# team (Platform).
DEMO_MIG_NODE = "ams1-mig-h100-001"
DEMO_MIG_SLICES = (("1", "3g.40gb", "research"), ("5", "2g.20gb", "inference"), ("13", "1g.10gb", "inference"))
DEMO_MIG_IDLE = ("14", "1g.10gb")
DEMO_XID = 79  # "GPU has fallen off the bus": the GPU is broken until someone resolves the event
DEMO_XID_MESSAGE = "XID 79 (demo: GPU has fallen off the bus)"


def demo_capacity_seed(*, now=None) -> dict[str, int]:
    """Fractional GPUs and broken capacity for the spend page: one on-prem H100 node split by MIG between two
    teams (one slice idle), and one GPU with an open XID event since six hours ago. Idempotent: what exists is
    left as it is. The MIG node has no telemetry endpoint (the simulator reports whole GPUs, which would remove
    its MIG slices); its slices stand for what telemetry would have synced."""
    now = now or timezone.now().replace(microsecond=0)
    site = Site.objects.filter(provider__name="onprem").order_by("name").first()
    teams = {t.slug: t for t in Team.objects.filter(slug__in=["research", "inference", "platform"])}
    if site is None or len(teams) < 3:
        return {"nodes": 0, "gpus": 0}
    h100 = GPU_SPECS["H100"]
    node, node_created = Node.objects.get_or_create(
        site=site,
        name=DEMO_MIG_NODE,
        defaults={
            "instance_type": "dgx-h100",
            "lifecycle": NodeLifecycle.OWNED,
            "state": NodeState.RUNNING,
            "team": teams["platform"],
            "project": Project.objects.filter(team=teams["platform"]).order_by("pk").first(),
            "labels": {"env": "prod", "owner": "platform", "mig": "enabled"},
            "launched_at": now - timedelta(days=60),
        },
    )
    gpu, gpu_created = GPU.objects.get_or_create(
        node=node,
        index=0,
        defaults={
            "uuid": "GPU-00000000-0000-4000-8000-00000000a1c0",
            "model": h100.nvml_name,
            "memory_mib": h100.memory_mib,
            "power_limit_w": h100.power_limit_w,
        },
    )
    for instance_id, profile, team in (*DEMO_MIG_SLICES, (*DEMO_MIG_IDLE, None)):
        GpuSlice.objects.get_or_create(
            gpu=gpu,
            name=f"{profile}#{instance_id}",
            defaults={
                "kind": GpuSliceKind.MIG,
                "units": int(profile[0]),
                "of_units": 7,
                "team": teams.get(team),
            },
        )
    broken = GPU.objects.filter(node__site=site).exclude(node=node).order_by("node__name", "index").first()
    if broken is not None and not HealthEvent.objects.filter(gpu=broken, message=DEMO_XID_MESSAGE).exists():
        HealthEvent.objects.create(
            gpu=broken,
            node_id=broken.node_id,
            occurred_at=now - timedelta(hours=6),
            kind=HealthEventKind.XID,
            code=DEMO_XID,
            message=DEMO_XID_MESSAGE,
        )
    return {"nodes": int(node_created), "gpus": int(gpu_created)}


@transaction.atomic
def demo_fleet_delete() -> None:
    """Delete the demo fleet (its providers and everything under them, and the demo teams), with the spend,
    commitments, jobs and datasets that refer to it."""
    names = [p[0] for p in DEMO_PROVIDERS]
    Job.objects.filter(team__slug__in=DEMO_TEAMS).delete()
    Dataset.objects.filter(Q(site__provider__name__in=names) | Q(name__in=[d[0] for d in DEMO_DATASETS])).delete()
    LedgerEntry.objects.filter(provider__name__in=names).delete()
    LedgerDay.objects.filter(provider__name__in=names).delete()
    LedgerNodeDay.objects.filter(node__site__provider__name__in=names).delete()
    Commitment.objects.filter(provider__name__in=names).delete()  # PROTECTs its provider (demo_commitments_seed)
    Node.objects.filter(site__provider__name__in=names).delete()
    Site.objects.filter(provider__name__in=names).delete()
    Provider.objects.filter(name__in=names).delete()
    Project.objects.filter(team__slug__in=DEMO_TEAMS).delete()
    Team.objects.filter(slug__in=DEMO_TEAMS).delete()
