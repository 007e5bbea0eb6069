"""Demo data for the scheduler: datasets in the demo fleet's regions and sites, a handful of jobs, team quotas."""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction

from fleet.models import Project, Site, Team
from scheduler.models import Dataset, Job, TeamQuota

GB = 10**9
# name, URI, region (cloud) or site name (on-prem), size in bytes
DEMO_DATASETS = (
    ("common-crawl-shard", "s3://fleetdeck-demo-crawl/2025-08/", "us-east-1", 2000 * GB),
    ("embeddings-v3", "s3://fleetdeck-demo-embed/v3/", "us-west-2", 400 * GB),
    ("imagenet-21k", "gs://fleetdeck-demo-imagenet/21k/", "europe-west4", 1300 * GB),
    ("pathology-scans", "", "dc-ams1", 800 * GB),
    ("dashcam-video", "", "dc-sjc1", 5000 * GB),
)
# name, team slug, project slug, GPUs, GPU model, hours, datasets, priority, spot allowed, allowed providers
DEMO_JOBS = (
    ("pretrain-7b", "research", "llm-pretrain", 8, "H100", "36", ("common-crawl-shard",), 10, False, ()),
    ("vit-finetune", "research", "vision", 4, "A100-80GB", "12", ("imagenet-21k",), 5, True, ()),
    ("embed-refresh", "inference", "batch-embed", 1, "L4", "6", ("embeddings-v3",), 0, True, ("aws", "gcp")),
    ("scan-segmentation", "research", "vision", 8, "A100-80GB", "20", ("pathology-scans",), 5, False, ("onprem",)),
    ("video-dedup", "data", "feature-etl", 2, "L40S", "8", ("dashcam-video",), 0, False, ()),
    ("ci-smoke", "platform", "ci-gpu", 1, "T4", "1", (), -5, True, ()),
)


@transaction.atomic
def demo_scheduler_seed() -> dict[str, int]:
    """Create the demo datasets and pending jobs (idempotent by name); the next placement run places them.

    Needs the demo fleet (devtools.demo.fleet.demo_fleet_seed) for its sites and teams; on-prem datasets whose site is
    missing, and jobs whose team is missing, are skipped.
    """
    sites = {s.name: s for s in Site.objects.select_related("provider")}
    datasets = {}
    for name, uri, where, size in DEMO_DATASETS:
        if uri:
            kind = "aws" if uri.startswith("s3://") else "gcp"
            defaults = {"uri": uri, "provider_kind": kind, "region": where, "size_bytes": size}
        elif where in sites:
            defaults = {"provider_kind": "onprem", "site": sites[where], "size_bytes": size}
        else:
            continue
        datasets[name], _ = Dataset.objects.get_or_create(name=name, defaults=defaults)
    teams = {t.slug: t for t in Team.objects.all()}
    projects = {(p.team.slug, p.slug): p for p in Project.objects.select_related("team")}
    jobs = 0
    for name, team, project, gpus, model, hours, inputs, priority, spot, providers in DEMO_JOBS:
        if team not in teams or Job.objects.filter(name=name).exists():
            continue
        job = Job.objects.create(
            name=name,
            team=teams[team],
            project=projects.get((team, project)),
            gpu_count=gpus,
            gpu_model=model,
            expected_hours=Decimal(hours),
            priority=priority,
            spot_allowed=spot,
            allowed_providers=list(providers),
        )
        job.datasets.set([datasets[d] for d in inputs if d in datasets])
        jobs += 1
    return {"datasets": len(datasets), "jobs": jobs}


# team slug, GPU model, guaranteed GPUs, borrow limit, fair-share weight: research is guaranteed its pretraining
# island and may borrow more; inference holds a share of the same H100s; every demo job fits its guarantee.
DEMO_QUOTAS = (
    ("research", "H100", 8, 16, "2"),
    ("research", "A100-80GB", 12, 4, "1"),
    ("inference", "H100", 8, 8, "1"),
    ("data", "L40S", 4, 4, "1"),
)


@transaction.atomic
def demo_quotas_seed() -> int:
    """Create the demo's team quotas (idempotent by team and model); return how many were created.

    One whose guarantee the seeded fleet cannot hold (a small ``--nodes``) is skipped, as the quota rules refuse it.
    """
    teams = {t.slug: t for t in Team.objects.all()}
    created = 0
    for slug, model, guaranteed, borrow, weight in DEMO_QUOTAS:
        if slug not in teams or TeamQuota.objects.filter(team=teams[slug], gpu_model=model).exists():
            continue
        quota = TeamQuota(
            team=teams[slug],
            gpu_model=model,
            guaranteed_gpus=guaranteed,
            borrow_limit_gpus=borrow,
            weight=Decimal(weight),
        )
        try:
            quota.full_clean()
        except ValidationError:
            continue
        quota.save()
        created += 1
    return created
