"""Dashboard benchmark: server time of the overview and of node detail (p50, p95) with 10,000 nodes (80,000
GPUs with live readings) and 30 days of fleet history, beside /healthz (the Django + database floor) in the
same run. Targets: overview p95 ≤ 100 ms, node detail p95 ≤ 20 ms.

Per-GPU history (30 days of hourly roll-ups and 6 hours of raw samples) is generated for a sample of nodes,
the ones whose detail pages are timed: the pages only ever read one node's rows through its index."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone

from core.choices import Role
from core.services import user_set_role
from devtools.bench.common import bench_database, percentiles_ms, requests_timed
from fleet.choices import Continent, NodeLifecycle, NodeState, ProviderKind
from fleet.models import GPU, Node, Provider, Site
from fleet.telemetry.storage import partitions_ensure

TARGET_OVERVIEW_P95_MS = 100
TARGET_NODE_DETAIL_P95_MS = 20
HISTORY_DAYS = 30


def _fleet(nodes: int, gpus_per_node: int, now) -> list[int]:
    rng = random.Random(11)  # noqa: S311 - reproducible benchmark data
    sites = []
    for kind, name, region in (
        (ProviderKind.ONPREM, "dc-1", "amsterdam"),
        (ProviderKind.AWS, "aws-use1", "us-east-1"),
        (ProviderKind.GCP, "gcp-usc1", "us-central1"),
    ):
        provider = Provider.objects.create(name=f"bench-{kind}", kind=kind)
        sites.append(
            Site.objects.create(
                provider=provider,
                name=name,
                region=region,
                continent=Continent.EUROPE,
                electricity_usd_per_kwh=0.2 if kind == ProviderKind.ONPREM else None,
                pue=1.3 if kind == ProviderKind.ONPREM else None,
            )
        )
    node_rows = Node.objects.bulk_create(
        Node(
            site=sites[i % 3],
            name=f"bench-{i:05d}",
            state=NodeState.RUNNING if i % 50 else NodeState.UNREACHABLE,
            lifecycle=NodeLifecycle.OWNED if i % 3 == 0 else NodeLifecycle.ON_DEMAND,
            last_seen=now,
        )
        for i in range(nodes)
    )
    gpus = []
    for node in node_rows:
        idle = rng.random() < 0.1
        for index in range(gpus_per_node):
            util = 0.0 if idle else rng.uniform(20, 100)
            gpus.append(
                GPU(
                    node=node,
                    index=index,
                    uuid=f"GPU-{uuid.UUID(int=rng.getrandbits(128))}",
                    model="NVIDIA H100 80GB HBM3",
                    memory_mib=81920,
                    power_limit_w=700,
                    sampled_at=now,
                    util_pct=util,
                    power_w=70 + util * 6,
                    mem_used_mib=util * 800,
                    temp_c=35 + util / 3,
                    idle_since=now - timedelta(hours=rng.randrange(1, 48)) if idle else None,
                )
            )
    GPU.objects.bulk_create(gpus, batch_size=5000)
    return [n.pk for n in node_rows]


def _history(sample_node_ids: list[int], now) -> None:
    with connection.cursor() as cursor:
        # 30 days of fleet minutes for three provider kinds.
        cursor.execute(
            """
            INSERT INTO fleet_fleet_minute (minute, provider_kind, gpus, util_avg, power_w)
            SELECT date_trunc('minute', %(now)s::timestamptz) - make_interval(mins => m), k, 26000,
                   50 + 30 * sin(m / 200.0), 2.0e6 + 5.0e5 * sin(m / 200.0)
            FROM generate_series(1, %(minutes)s) AS m, unnest(ARRAY['onprem', 'aws', 'gcp']) AS k
            """,
            {"now": now, "minutes": HISTORY_DAYS * 1440},
        )
        cursor.execute("SELECT id FROM fleet_gpu WHERE node_id = ANY(%s)", [sample_node_ids])
        gpu_ids = [row[0] for row in cursor.fetchall()]
        # 30 days of hourly roll-ups (with their 1-minute arrays) for the sampled nodes' GPUs.
        cursor.execute(
            """
            INSERT INTO fleet_gpu_hour (hour, gpu_id, energy_wh, samples, idle_s, util_avg, util_max, power_avg_w,
                power_max_w, mem_used_max_mib, temp_max_c, minutes, util_1m, power_1m_w, mem_1m_mib, temp_1m_c)
            SELECT date_trunc('hour', %(now)s::timestamptz) - make_interval(hours => h), g, 400, 240, 0, 60, 90, 400,
                   600, 50000, 70, m.minutes, m.util, m.power, m.mem, m.temp
            FROM unnest(%(ids)s::bigint[]) AS g, generate_series(1, %(hours)s) AS h,
                 (SELECT array_agg(i::smallint) AS minutes, array_agg((50 + i %% 40)::smallint) AS util,
                         array_agg((300 + i)::real) AS power, array_agg((40000 + i)::real) AS mem,
                         array_agg((60 + i %% 10)::smallint) AS temp FROM generate_series(0, 59) AS i) AS m
            """,
            {"now": now, "ids": gpu_ids, "hours": HISTORY_DAYS * 24},
        )
        # The last 6 hours of raw 15 s samples for the same GPUs.
        cursor.execute(
            """
            INSERT INTO fleet_gpu_sample (ts, gpu_id, power_w, mem_used_mib, util_pct, temp_c, sm_clock_mhz)
            SELECT to_timestamp(floor(extract(epoch FROM %(now)s::timestamptz) / 15) * 15)
                   - make_interval(secs => 15 * s),
                   g, 300 + s %% 300, 40000, (s %% 100)::smallint, 60, 1980
            FROM unnest(%(ids)s::bigint[]) AS g, generate_series(0, 1439) AS s
            """,
            {"now": now, "ids": gpu_ids},
        )
        cursor.execute("ANALYZE")


def run(*, nodes: int = 10_000, gpus_per_node: int = 8, sample_nodes: int = 50, repeat: int = 20) -> dict:
    now = timezone.now()
    with bench_database():
        node_ids = _fleet(nodes, gpus_per_node, now)
        partitions_ensure(now=now - timedelta(days=1), days_ahead=2)
        sample = node_ids[:: max(1, len(node_ids) // sample_nodes)][:sample_nodes]
        _history(sample, now)
        user = get_user_model().objects.create_user("bench", password=uuid.uuid4().hex)
        user_set_role(user=user, role=Role.VIEWER)
        client = Client()
        client.force_login(user)
        detail_urls = [f"/nodes/{pk}/" for pk in sample]
        chart_urls = [f"/nodes/{pk}/charts/?range=6h" for pk in sample]
        requests_timed(client, ["/", *detail_urls[:3], *chart_urls[:3], "/healthz"], 1)  # warm caches and connections
        overview = requests_timed(client, ["/"], repeat)
        with override_settings(DASHBOARD_CACHE_S=0):
            overview_uncached = requests_timed(client, ["/"], max(1, repeat // 2))
        detail = requests_timed(client, detail_urls, max(1, repeat // 5))
        charts = requests_timed(client, chart_urls, max(1, repeat // 10))
        floor = requests_timed(client, ["/healthz"], repeat)
        gpu_count = GPU.objects.count()
    overview_p = percentiles_ms(overview)
    detail_p = percentiles_ms(detail)
    return {
        "bench": "dashboard",
        "nodes": nodes,
        "gpus": gpu_count,
        "history_days": HISTORY_DAYS,
        "overview": overview_p,
        "overview_uncached": percentiles_ms(overview_uncached),
        "node_detail": detail_p,
        "node_charts_6h": percentiles_ms(charts),
        "healthz_floor": percentiles_ms(floor),
        "target_overview_p95_ms": TARGET_OVERVIEW_P95_MS,
        "target_node_detail_p95_ms": TARGET_NODE_DETAIL_P95_MS,
        "meets_targets": overview_p["p95_ms"] <= TARGET_OVERVIEW_P95_MS
        and detail_p["p95_ms"] <= TARGET_NODE_DETAIL_P95_MS,
    }


def run_scaled(scale: float) -> dict:
    """``run`` with the node count multiplied by ``scale`` (1.0: 10,000 nodes, 80,000 GPUs)."""
    return run(nodes=max(10, round(10_000 * scale)))
