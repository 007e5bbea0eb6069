"""Buy-vs-rent benchmark: server time (p50, p95) of the buy-vs-rent API (every GPU model, and one model with
what-if figures) and page, with 30 days of hourly ledger for 10,000 nodes × 8 GPUs (7.2 M LedgerEntry rows,
80,000 GPU rows, their LedgerDay roll-up), beside the same utilisation and energy summed from the hourly ledger
(LedgerEntry) instead of LedgerDay in the same run. Target: p95 ≤ 200 ms.

The fleet and its hourly ledger are the spend benchmark's (``devtools.bench.spend``: set-based, the daily
roll-up by the product's own refresh), plus what buy vs rent reads beside them: a GPU row per GPU, a cost model
per on-prem site, list prices of each model on AWS and GCP, and commitments (a savings plan, reserved instances).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Sum
from django.test import Client

from billing import buyrent, selectors
from billing.choices import CommitmentBasis, CommitmentKind, PriceSource
from billing.models import Commitment, InstancePrice, LedgerDay, LedgerEntry, OnPremCostModel
from core.choices import Role
from core.services import user_set_role
from devtools.bench.common import bench_database, percentiles_ms, requests_timed, timed
from devtools.bench.spend import GPU_MODELS, HISTORY_DAYS, _fleet, _ledger
from fleet.catalog import GPU_KEY_BY_NVML_NAME, GPU_SPECS
from fleet.choices import ProviderKind
from fleet.models import GPU, Node, Provider, Site

TARGET_P95_MS = 200
GPUS_PER_NODE = 8
# (provider kind, region, instance type, catalogue key, GPUs, on-demand $/h, spot $/h): list prices of the shapes
# carrying the spend benchmark's four models (AWS and GCP price pages, rounded).
PRICES = (
    ("aws", "us-east-1", "p5.48xlarge", "H100", 8, "98.32", "39.33"),
    ("aws", "us-west-2", "p5.48xlarge", "H100", 8, "98.32", "41.10"),
    ("gcp", "us-central1", "a3-highgpu-8g", "H100", 8, "88.49", "29.20"),
    ("aws", "us-east-1", "p4de.24xlarge", "A100-80GB", 8, "40.97", "16.39"),
    ("gcp", "us-central1", "a2-ultragpu-8g", "A100-80GB", 8, "40.22", "12.07"),
    ("aws", "us-east-1", "g6.xlarge", "L4", 1, "0.8048", "0.3219"),
    ("gcp", "us-central1", "g2-standard-4", "L4", 1, "0.7068", "0.2240"),
    ("aws", "us-east-1", "g5.xlarge", "A10G", 1, "1.006", "0.4024"),
)
PURCHASE_USD_PER_GPU = {"H100": "37500", "A100-80GB": "20000", "L4": "3500", "A10G": "4500"}


def _buyrent_inputs(today) -> None:
    """GPU rows for every node (its model rides on instance_type in the spend bench), cost models, prices and
    commitments in force ``today``."""
    nodes = list(Node.objects.values_list("pk", "instance_type"))
    GPU.objects.bulk_create(
        (
            GPU(
                node_id=node_id,
                index=i,
                uuid=f"GPU-{uuid.UUID(int=node_id * GPUS_PER_NODE + i)}",
                model=model,
                memory_mib=GPU_SPECS[GPU_KEY_BY_NVML_NAME[model]].memory_mib,
                power_limit_w=GPU_SPECS[GPU_KEY_BY_NVML_NAME[model]].power_limit_w,
            )
            for node_id, model in nodes
            for i in range(GPUS_PER_NODE)
        ),
        batch_size=5000,
    )
    start = today - timedelta(days=HISTORY_DAYS + 30)
    for site in Site.objects.filter(provider__kind=ProviderKind.ONPREM):
        OnPremCostModel.objects.create(
            site=site,
            purchase_usd_per_gpu=30000,
            amortisation_months=48,
            ops_usd_per_gpu_year=3000,
            effective_from=start,
        )
        for nvml in GPU_MODELS:
            OnPremCostModel.objects.create(
                site=site,
                gpu_model=nvml,
                purchase_usd_per_gpu=PURCHASE_USD_PER_GPU[GPU_KEY_BY_NVML_NAME[nvml]],
                amortisation_months=48,
                ops_usd_per_gpu_year=3000,
                effective_from=start,
            )
    InstancePrice.objects.bulk_create(
        InstancePrice(
            provider_kind=kind,
            region=region,
            instance_type=itype,
            gpu_model=key,
            gpu_count=gpus,
            on_demand_usd_per_h=Decimal(on_demand),
            spot_usd_per_h=Decimal(spot),
            effective_from=start,
            source=PriceSource.CATALOGUE,
        )
        for kind, region, itype, key, gpus, on_demand, spot in PRICES
    )
    aws = Provider.objects.filter(kind=ProviderKind.AWS).first()
    common = {"provider": aws, "start": start, "end": today + timedelta(days=365)}
    Commitment.objects.create(
        name="bench-sp",
        kind=CommitmentKind.SAVINGS_PLAN,
        basis=CommitmentBasis.SPEND,
        hourly_commitment_usd=500,
        discount_pct=Decimal("35"),
        **common,
    )
    Commitment.objects.create(
        name="bench-ri-p5",
        kind=CommitmentKind.RESERVED_INSTANCE,
        basis=CommitmentBasis.COUNT,
        region="us-east-1",
        instance_type="p5.48xlarge",
        count=20,
        rate_usd_per_h=Decimal("61.20"),
        **common,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def _from_entries(start, end) -> list:
    """The baseline: the utilisation and energy sums buy vs rent reads, summed from the hourly ledger."""
    since, until = selectors.day_bounds(start, end)
    return list(
        LedgerEntry.objects.filter(hour__gte=since, hour__lt=until)
        .exclude(gpu_model="")
        .order_by()
        .values("gpu_model", "provider_kind")
        .annotate(gpu_hours=Sum("gpu_hours"), idle=Sum("idle_gpu_hours"), kwh=Sum("energy_kwh"))
    )


def _agree(start, end) -> bool:
    """The answer's GPU-hours and idle GPU-hours per model equal the hourly ledger's sums."""
    answer = buyrent.buy_vs_rent(start=start, end=end, teams=None, today=selectors.utc_today())
    mine = {row.gpu_model: (row.usage.gpu_hours, row.usage.idle_gpu_hours) for row in answer.rows}
    theirs: dict[str, list] = {}
    for row in _from_entries(start, end):
        into = theirs.setdefault(GPU_KEY_BY_NVML_NAME.get(row["gpu_model"], row["gpu_model"]), [0, 0])
        into[0] += row["gpu_hours"]
        into[1] += row["idle"]
    return mine == {key: tuple(v) for key, v in theirs.items()}


def run(*, nodes: int = 10_000, repeat: int = 60) -> dict:
    now = datetime.now(UTC)
    with bench_database():
        today = selectors.utc_today()
        build_s, _ = timed(lambda: (_fleet(nodes), _ledger(now), _buyrent_inputs(today)))
        entries, days, gpus = LedgerEntry.objects.count(), LedgerDay.objects.count(), GPU.objects.count()
        user = get_user_model().objects.create_user("bench", password=uuid.uuid4().hex)
        user_set_role(user=user, role=Role.OPERATOR)
        client = Client()
        client.force_login(user)
        what_if = "gpu_model=H100&purchase_usd_per_gpu=32000&amortisation_months=36&utilisation=60&usd_per_kwh=0.15"
        api_urls = ["/api/v1/spend/buy-vs-rent/", f"/api/v1/spend/buy-vs-rent/?{what_if}"]
        page_urls = ["/buy-vs-rent/", f"/buy-vs-rent/?{what_if}"]
        requests_timed(client, [*api_urls, *page_urls, "/healthz"], 2)  # warm connections and caches
        api = requests_timed(client, api_urls, max(1, repeat // len(api_urls)))
        page = requests_timed(client, page_urls, max(1, repeat // len(page_urls)))
        start, end = today - timedelta(days=buyrent.WINDOW_DAYS - 1), today + timedelta(days=1)
        service = [
            timed(lambda: buyrent.buy_vs_rent(start=start, end=end, teams=None, today=today))[0] for _ in range(10)
        ]
        baseline = [timed(lambda: _from_entries(start, end))[0] for _ in range(5)]
        floor = requests_timed(client, ["/healthz"], repeat)
        rows = len(buyrent.buy_vs_rent(start=start, end=end, teams=None, today=today).rows)
        agree = _agree(start, end)
    api_p, page_p = percentiles_ms(api), percentiles_ms(page)
    return {
        "bench": "buyrent",
        "nodes": nodes,
        "gpus": gpus,
        "days": HISTORY_DAYS,
        "ledger_entries": entries,
        "ledger_days": days,
        "gpu_models": rows,
        "build_s": round(build_s, 1),
        "api": api_p,
        "page": page_p,
        "service": percentiles_ms(service),
        "baseline_sums_from_ledger_entries": percentiles_ms(baseline),
        "healthz_floor": percentiles_ms(floor),
        "usage_agrees_with_ledger_entries": agree,
        "target_p95_ms": TARGET_P95_MS,
        "meets_target": api_p["p95_ms"] <= TARGET_P95_MS and page_p["p95_ms"] <= TARGET_P95_MS,
    }


def run_scaled(scale: float) -> dict:
    """``run`` with the node count multiplied by ``scale`` (1.0: 10,000 nodes, 7.2 M ledger hours)."""
    return run(nodes=max(12, round(10_000 * scale)))
