"""Ledger benchmark: 30 days of the hourly cost ledger for 10,000 nodes, set-based SQL beside a per-node ORM loop.

The fleet is half on-prem (4 × H100, cost models that change mid-period), half AWS (4 × L4, on-demand, spot
and reserved, a price change and a discount); a tenth of the nodes start or stop mid-period and about 1 % have
no price. GPU-hour roll-ups are generated set-based for every hour and GPU (above 2,500 nodes for the first 2
of the 4 GPUs only: 14.4 M rows at full scale; the figures say which). The product path (``ledger_compute``
over all nodes and 30 days, LedgerDay refresh included) is timed in full; the naive path (per node: its GPUs,
its roll-ups, the price of each day through the ORM, rows computed in Python and written with ``bulk_create``)
is timed on a subset of nodes over the same 30 days and its rows/s extrapolated. Both write the same rows; the
largest per-row difference is reported.

**Carbon and commitments overhead**, same run, same world: the 30 days are then recomputed ``OVERHEAD_ROUNDS``
times each way, alternately — *plain* (no grid intensity, no provider PUE, no commitment: the world above) and
*cost truth* (hourly grid intensities for both sites every hour, the region's shipped intensity, AWS's PUE, and
four commitments over the AWS nodes: two back-to-back reserved-instance terms, a regional and an account-wide
savings plan) — each after ``VACUUM ANALYZE`` of the ledger table. ``overhead_pct`` compares the fastest run of
each; the seconds of every statement kind of ``ledger_compute`` are listed for the fastest runs
(devtools.bench.ledger_overhead).
"""

from __future__ import annotations

import time as clock
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection, transaction
from django.db.models import Q

from devtools.bench.common import bench_database, bench_fleet
from devtools.bench.ledger_overhead import overhead_measure

BENCH_NODES = 10_000
BENCH_DAYS = 30
GPUS_PER_NODE = 4
NAIVE_NODES = 200
ROLLUP_ALL_GPUS_MAX_NODES = 2500
START = datetime(2026, 1, 1, tzinfo=UTC)
L4_NVML = "NVIDIA L4"
H100_NVML = "NVIDIA H100 80GB HBM3"
SIX = Decimal("0.000001")
HOUR = timedelta(hours=1)
FIELDS = ("compute_usd", "energy_kwh", "energy_usd", "gpu_hours", "idle_gpu_hours", "idle_usd")
OVERHEAD_ROUNDS = 2
OVERHEAD_TARGET_PCT = 20

ROLLUP_SQL = """
INSERT INTO fleet_gpu_hour (hour, gpu_id, energy_wh, samples, idle_s, minutes, util_1m, power_1m_w, mem_1m_mib,
                            temp_1m_c)
SELECT %(start)s::timestamptz + make_interval(hours => h::int), g.id,
       ((g.id * 7919 + h * 104729) %% 2800)::float8, 240,
       CASE WHEN (g.id + h) %% 5 = 0 THEN 3600 ELSE ((g.id * 31 + h) %% 600)::int END,
       '{}', '{}', '{}', '{}', '{}'
FROM fleet_gpu g CROSS JOIN generate_series(0, %(hours)s - 1) h
WHERE g.index < %(gpus)s
ORDER BY h, g.id
"""


def _fleet_build(nodes: int) -> tuple[list[int], dict]:
    """The benchmark fleet with its prices; returns the node ids and what was built."""
    from billing.models import Discount, InstancePrice, OnPremCostModel
    from fleet.choices import Continent, NodeLifecycle, ProviderKind
    from fleet.models import GPU, Node, Provider, Site

    onprem_count = nodes // 2
    onprem = [node for node, _ in bench_fleet(nodes=onprem_count, gpus_per_node=GPUS_PER_NODE)]
    site = onprem[0].site if onprem else None
    if site is not None:
        OnPremCostModel.objects.create(
            site=site,
            purchase_usd_per_gpu=Decimal("37500"),
            amortisation_months=48,
            ops_usd_per_gpu_year=Decimal("3750"),
            effective_from=date(2025, 1, 1),
        )
        OnPremCostModel.objects.create(
            site=site,
            gpu_model=H100_NVML,
            purchase_usd_per_gpu=Decimal("30000"),
            amortisation_months=36,
            ops_usd_per_gpu_year=Decimal("3000"),
            effective_from=START.date() + timedelta(days=15),
        )
    aws = Provider.objects.create(name="bench-aws", kind=ProviderKind.AWS, account_id="123456789012")
    cloud_site = Site.objects.create(
        provider=aws, name="bench-aws-us-east-1", region="us-east-1", continent=Continent.NORTH_AMERICA
    )
    lifecycles = (NodeLifecycle.ON_DEMAND, NodeLifecycle.SPOT, NodeLifecycle.RESERVED)
    cloud = Node.objects.bulk_create(
        (
            Node(
                site=cloud_site,
                name=f"cloud-{i:05d}",
                external_id=f"i-{i:017x}",
                instance_type="x-unpriced" if i % 97 == 0 else "g6.12xlarge",
                lifecycle=lifecycles[i % 3],
            )
            for i in range(nodes - onprem_count)
        ),
        batch_size=5000,
    )
    GPU.objects.bulk_create(
        (
            GPU(node=node, index=i, model=L4_NVML, memory_mib=23034, power_limit_w=72)
            for node in cloud
            for i in range(GPUS_PER_NODE)
        ),
        batch_size=10000,
    )
    for effective_from, on_demand, spot in (
        (date(2025, 6, 1), "4.6016", "1.9120"),
        (START.date() + timedelta(days=10), "4.2000", "1.7500"),
    ):
        InstancePrice.objects.create(
            provider_kind=ProviderKind.AWS,
            region="us-east-1",
            instance_type="g6.12xlarge",
            gpu_model="L4",
            gpu_count=4,
            on_demand_usd_per_h=Decimal(on_demand),
            spot_usd_per_h=Decimal(spot),
            effective_from=effective_from,
            source="catalogue",
        )
    Discount.objects.create(provider=aws, percent=Decimal(5), applies_to="on-demand", effective_from=date(2025, 1, 1))
    # Everything runs from before the period; a tenth starts mid-period at :20, a tenth ends mid-period at :45.
    ids = [node.pk for node in onprem] + [node.pk for node in cloud]
    hours = BENCH_DAYS * 24
    with connection.cursor() as cursor:
        cursor.execute("UPDATE fleet_node SET launched_at = %s", [START - timedelta(days=1)])
        cursor.execute(
            "UPDATE fleet_node SET launched_at = %s::timestamptz"
            " + make_interval(hours => ((id * 37) %% %s)::int, mins => 20)"
            " WHERE id %% 10 = 3",
            [START, hours],
        )
        cursor.execute(
            "UPDATE fleet_node SET ended_at = %s::timestamptz"
            " + make_interval(hours => ((id * 53) %% %s)::int, mins => 45)"
            " WHERE id %% 10 = 7",
            [START, hours],
        )
    return ids, {"onprem_nodes": len(onprem), "cloud_nodes": len(cloud)}


def _rollups_build(gpus: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(ROLLUP_SQL, {"start": START, "hours": BENCH_DAYS * 24, "gpus": gpus})
        count = cursor.rowcount
        # As autovacuum would after a day of inserts: summarises the BRIN ranges (unsummarised ones match any
        # hour, so every day would scan the whole table) and gathers statistics.
        cursor.execute("VACUUM ANALYZE fleet_gpu_hour")
        cursor.execute("ANALYZE fleet_gpu")
        cursor.execute("ANALYZE fleet_node")
    return count


def _naive_rate(node, day: date, gpu_count: int, gpu_model: str) -> Decimal | None:
    from billing.models import Discount, InstancePrice, OnPremCostModel

    if node.site.provider.kind == "onprem":
        models = OnPremCostModel.objects.filter(effective_from__lte=day)
        model = (
            models.filter(node=node).order_by("-effective_from").first()
            or models.filter(site=node.site, gpu_model=gpu_model).order_by("-effective_from").first()
            or models.filter(site=node.site, gpu_model="").order_by("-effective_from").first()
        )
        return None if model is None else model.usd_per_gpu_hour * gpu_count
    prices = InstancePrice.objects.filter(
        provider_kind=node.site.provider.kind,
        region=node.site.region,
        instance_type=node.instance_type,
        effective_from__lte=day,
    ).order_by("-effective_from", "-pk")
    price = prices.filter(source="override").first() or prices.first()
    if price is None:
        return None
    base = price.spot_usd_per_h if node.lifecycle == "spot" else price.on_demand_usd_per_h
    if base is None:
        return None
    option = "spot" if node.lifecycle == "spot" else "on-demand"
    discount = (
        Discount.objects.filter(provider=node.site.provider, effective_from__lte=day, applies_to__in=("all", option))
        .filter(Q(effective_to__isnull=True) | Q(effective_to__gte=day))
        .order_by("-effective_from", "-pk")
    )
    chosen = discount.exclude(applies_to="all").first() or discount.first()
    return _six(base * (100 - (chosen.percent if chosen else 0)) / 100)


def ledger_naive(*, start: datetime, end: datetime, node_ids: list[int], now: datetime) -> int:
    """The ledger the obvious way: node by node through the ORM, each row computed in Python (the baseline)."""
    from billing.models import LedgerEntry
    from fleet.models import Node

    written = 0
    for node in Node.objects.filter(pk__in=node_ids).select_related("site__provider").order_by("pk"):
        gpus = list(node.gpus.values_list("pk", "model"))
        gpu_count = len(gpus)
        gpu_model = Counter(model for _, model in gpus).most_common(1)[0][0] if gpus else ""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT hour, sum(energy_wh), sum(idle_s) FROM fleet_gpu_hour WHERE gpu_id = ANY(%s)"
                " AND hour >= %s AND hour < %s GROUP BY hour",
                [[pk for pk, _ in gpus], start, end],
            )
            rollups = {hour: (Decimal(str(energy)), idle) for hour, energy, idle in cursor.fetchall()}
        begin = node.launched_at or node.created
        finish = min(node.ended_at or now, now)
        onprem = node.site.provider.kind == "onprem"
        rates: dict[date, Decimal | None] = {}
        entries = []
        hour = start
        while hour < end:
            active_s = int((min(hour + HOUR, finish) - max(hour, begin)).total_seconds()) if hour < finish else 0
            if active_s > 0:
                day = hour.date()
                if day not in rates:
                    rates[day] = _naive_rate(node, day, gpu_count, gpu_model)
                rate = rates[day]
                energy_wh, idle_s = rollups.get(hour, (Decimal(0), 0))
                compute = (rate or Decimal(0)) * active_s / 3600
                kwh = energy_wh / 1000 * (node.site.pue if onprem else 1)
                gpu_hours = Decimal(gpu_count * active_s) / 3600
                idle = min(Decimal(idle_s) / 3600, gpu_hours)
                entries.append(
                    LedgerEntry(
                        node=node,
                        hour=hour,
                        provider_id=node.site.provider_id,
                        provider_kind=node.site.provider.kind,
                        site_id=node.site_id,
                        team_id=node.team_id,
                        project_id=node.project_id,
                        gpu_model=gpu_model,
                        lifecycle=node.lifecycle,
                        gpu_count=gpu_count,
                        active_s=active_s,
                        rate_usd_per_h=_six(rate or 0),
                        compute_usd=_six(compute),
                        energy_kwh=_six(kwh),
                        energy_usd=_six(kwh * node.site.electricity_usd_per_kwh if onprem else 0),
                        gpu_hours=_six(gpu_hours),
                        idle_gpu_hours=_six(idle),
                        idle_usd=_six(compute * idle / gpu_hours if gpu_hours else 0),
                        priced=rate is not None,
                    )
                )
            hour += HOUR
        with transaction.atomic():
            LedgerEntry.objects.filter(node=node, hour__gte=start, hour__lt=end).delete()
            LedgerEntry.objects.bulk_create(entries, batch_size=1000)
        written += len(entries)
    return written


def _six(value) -> Decimal:
    return Decimal(value).quantize(SIX, rounding=ROUND_HALF_UP)


def _rows_of(node_ids: list[int]) -> dict:
    from billing.models import LedgerEntry

    return {
        (row["node_id"], row["hour"]): row
        for row in LedgerEntry.objects.filter(node_id__in=node_ids).values("node_id", "hour", *FIELDS)
    }


def run_scaled(scale: float) -> dict:
    """Build the fleet and its roll-ups at ``scale`` × 10,000 nodes, time both paths, return the figures."""
    from billing.ledger import ledger_compute

    nodes = max(20, round(BENCH_NODES * scale))
    naive_nodes = max(4, min(NAIVE_NODES, round(NAIVE_NODES * scale * 10)))
    start, end = START, START + timedelta(days=BENCH_DAYS)
    # 28.8 M roll-up rows take long to write on a small shared machine; past this many nodes only the first
    # two GPUs of each node get roll-ups (14.4 M rows at full scale). The ledger still has a row per node-hour.
    rollup_gpus = GPUS_PER_NODE if nodes <= ROLLUP_ALL_GPUS_MAX_NODES else 2
    with bench_database():
        started = clock.perf_counter()
        ids, built = _fleet_build(nodes)
        rollup_rows = _rollups_build(rollup_gpus)
        build_s = clock.perf_counter() - started
        # A spread subset (on-prem and cloud alike) for the naive path.
        subset = ids[:: max(1, len(ids) // naive_nodes)][:naive_nodes]

        started = clock.perf_counter()
        naive_rows = ledger_naive(start=start, end=end, node_ids=subset, now=end)
        naive_s = clock.perf_counter() - started
        naive = _rows_of(subset)

        started = clock.perf_counter()
        report = ledger_compute(start=start, end=end, now=end)
        product_s = clock.perf_counter() - started
        product = _rows_of(subset)

        overhead = overhead_measure(start=start, end=end, rounds=OVERHEAD_ROUNDS, target_pct=OVERHEAD_TARGET_PCT)

    diffs = [abs(naive[key][f] - product[key][f]) for key in naive.keys() & product.keys() for f in FIELDS] or [
        Decimal(0)
    ]
    return {
        "bench": "ledger",
        "scale": scale,
        "nodes": nodes,
        **built,
        "days": BENCH_DAYS,
        "gpus_per_node": GPUS_PER_NODE,
        "rollup_rows": rollup_rows,
        "rollups_for": f"{rollup_gpus} of {GPUS_PER_NODE} GPUs per node, every hour",
        "build_s": round(build_s, 1),
        "product_rows": report.rows,
        "product_day_rows": report.day_rows,
        "product_s": round(product_s, 2),
        "product_rows_per_s": round(report.rows / product_s),
        "unpriced_nodes": report.unpriced_count,
        "naive_nodes": len(subset),
        "naive_rows": naive_rows,
        "naive_s": round(naive_s, 2),
        "naive_rows_per_s": round(naive_rows / naive_s),
        "naive_note": f"per-node ORM loop on {len(subset)} nodes × {BENCH_DAYS} days; rows/s extrapolates",
        "naive_extrapolated_s_for_all": round(report.rows / (naive_rows / naive_s), 1),
        "speedup": round((report.rows / product_s) / (naive_rows / naive_s), 1),
        "naive_rows_matching_product": len(naive.keys() & product.keys()),
        "naive_vs_product_max_abs_diff": str(max(diffs)),
        **overhead,
    }
