"""Spend benchmark: server time (p50, p95) of the spend page (as served, its figures cached a few seconds like
the overview's, and uncached) and of the summary API with 30 days of hourly
ledger for 10,000 nodes (7.2 M LedgerEntry rows and their LedgerDay roll-up), beside the same summary computed
from LedgerEntry instead of LedgerDay in the same run. Target: p95 ≤ 100 ms.

The data is written set-based: nodes with bulk_create, the hourly ledger with one INSERT … SELECT over
generate_series, the daily roll-up with one INSERT … SELECT … GROUP BY over it (as the ledger's own roll-up).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Sum
from django.test import Client, override_settings

from billing import selectors
from billing.ledger import ledger_days_refresh
from billing.models import Budget, LedgerDay, LedgerEntry
from core.choices import Role
from core.services import user_set_role
from devtools.bench.common import bench_database, percentiles_ms, requests_timed, timed
from fleet.choices import Continent, NodeLifecycle, ProviderKind
from fleet.models import Node, Project, Provider, Site, Team

TARGET_P95_MS = 100
HISTORY_DAYS = 30
TEAMS = 20
PROJECTS_PER_TEAM = 3
GPU_MODELS = ("NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB", "NVIDIA L4", "NVIDIA A10G")
SUMMARY_GROUPS = ("provider", "team", "project", "gpu_model", "day")


def _fleet(nodes: int) -> None:
    sites = []
    for kind, name, region in (
        (ProviderKind.ONPREM, "dc-1", "amsterdam"),
        (ProviderKind.ONPREM, "dc-2", "frankfurt"),
        (ProviderKind.AWS, "aws-use1", "us-east-1"),
        (ProviderKind.AWS, "aws-usw2", "us-west-2"),
        (ProviderKind.GCP, "gcp-usc1", "us-central1"),
        (ProviderKind.GCP, "gcp-euw4", "europe-west4"),
    ):
        provider, _ = Provider.objects.get_or_create(name=f"bench-{kind}", kind=kind)
        onprem = kind == ProviderKind.ONPREM
        sites.append(
            Site.objects.create(
                provider=provider,
                name=name,
                region=region,
                continent=Continent.EUROPE,
                electricity_usd_per_kwh=0.2 if onprem else None,
                pue=1.3 if onprem else None,
            )
        )
    teams = Team.objects.bulk_create(Team(name=f"Team {i}", slug=f"team-{i}") for i in range(TEAMS))
    projects = Project.objects.bulk_create(
        Project(team=team, name=f"P{j}", slug=f"p{j}") for team in teams for j in range(PROJECTS_PER_TEAM)
    )
    Budget.objects.bulk_create(Budget(team=team, monthly_usd=1_000_000) for team in teams)
    lifecycles = (NodeLifecycle.ON_DEMAND, NodeLifecycle.SPOT, NodeLifecycle.RESERVED)
    rows = []
    for i in range(nodes):
        site = sites[i % len(sites)]
        project = projects[(i // 7) % len(projects)]
        rows.append(
            Node(
                site=site,
                name=f"bench-{i:05d}",
                lifecycle=NodeLifecycle.OWNED if site.provider.kind == ProviderKind.ONPREM else lifecycles[i % 3],
                team_id=project.team_id,
                project=project,
                # The GPU model rides on the instance type column here; the ledger SQL reads it back.
                instance_type=GPU_MODELS[(i // 3) % len(GPU_MODELS)],
            )
        )
    Node.objects.bulk_create(rows, batch_size=5000)


def _ledger(now: datetime) -> None:
    end = now.replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=HISTORY_DAYS)
    table = LedgerEntry._meta.db_table
    with connection.cursor() as cursor:
        # A bulk load: the rows are generated from existing nodes, so foreign keys hold by construction; skip
        # their per-row triggers and build the secondary indexes once afterwards (as a restore does).
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname NOT LIKE '%%pkey'",
            [table],
        )
        indexes = cursor.fetchall()
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass "
            "AND contype = 'u'",
            [table],
        )
        uniques = cursor.fetchall()
        for name, _ in uniques:
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _ in indexes:
            if name not in {u[0] for u in uniques}:
                cursor.execute(f'DROP INDEX "{name}"')
        # Every node-hour: a deterministic 0-7 of its 8 GPUs idle (about half the hours none).
        cursor.execute(
            """
            INSERT INTO billing_ledgerentry (node_id, hour, provider_id, provider_kind, site_id, team_id, project_id,
                gpu_model, lifecycle, gpu_count, active_s, rate_usd_per_h, compute_usd, energy_kwh, energy_usd,
                gpu_hours, idle_gpu_hours, idle_usd, priced)
            SELECT n.id, h, s.provider_id, p.kind, n.site_id, n.team_id, n.project_id, n.instance_type, n.lifecycle,
                   8, 3600, r.rate, r.rate, r.kwh, CASE WHEN p.kind = 'onprem' THEN r.kwh * 0.26 ELSE 0 END,
                   8, i.idle, i.idle / 8.0 * r.rate, true
            FROM fleet_node n
            JOIN fleet_site s ON s.id = n.site_id
            JOIN fleet_provider p ON p.id = s.provider_id
            CROSS JOIN LATERAL (SELECT 10 + (n.id %% 7) * 3.5 AS rate, 4.5 + (n.id %% 5) * 0.2 AS kwh) r
            CROSS JOIN generate_series(%(start)s::timestamptz, %(last)s::timestamptz, interval '1 hour') AS h
            CROSS JOIN LATERAL (
                SELECT greatest(0, abs(hashint8(n.id * 100003 + extract(epoch FROM h)::bigint)) %% 16 - 8) AS idle
            ) i
            """,
            {"start": start, "last": end - timedelta(hours=1)},
        )
        for name, definition in uniques:
            cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        for name, definition in indexes:
            if name not in {u[0] for u in uniques}:
                cursor.execute(definition)
        cursor.execute("SET session_replication_role = DEFAULT")
    # The daily and per-node roll-ups, by the product's own refresh.
    ledger_days_refresh(days=[(start + timedelta(days=d)).date() for d in range(HISTORY_DAYS + 1)])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def _from_entries(start, end, dimension: str) -> list:
    """The baseline: the same summary summed from the hourly ledger instead of its daily roll-up."""
    since = datetime.combine(start, datetime.min.time(), tzinfo=UTC)
    until = datetime.combine(end, datetime.min.time(), tzinfo=UTC)
    column = selectors.DIMENSION_COLUMNS[dimension] if dimension != "day" else "hour__date"
    return list(
        LedgerEntry.objects.filter(hour__gte=since, hour__lt=until)
        .order_by()
        .values(column)
        .annotate(compute=Sum("compute_usd"), energy=Sum("energy_usd"), idle=Sum("idle_usd"))
    )


def run(*, nodes: int = 10_000, repeat: int = 50) -> dict:
    now = datetime.now(UTC)
    with bench_database():
        build_s, _ = timed(lambda: (_fleet(nodes), _ledger(now)))
        entries, days = LedgerEntry.objects.count(), LedgerDay.objects.count()
        user = get_user_model().objects.create_user("bench", password=uuid.uuid4().hex)
        user_set_role(user=user, role=Role.OPERATOR)
        client = Client()
        client.force_login(user)
        today = selectors.utc_today()
        first = (today - timedelta(days=HISTORY_DAYS - 1)).isoformat()
        period = f"from={first}&to={today.isoformat()}"
        page_urls = ["/spend/", f"/spend/?date_from={first}&date_to={today.isoformat()}"]
        summary_urls = [f"/api/v1/spend/summary/?group_by={g}&{period}" for g in SUMMARY_GROUPS]
        requests_timed(client, [*page_urls, *summary_urls, "/healthz"], 2)  # warm connections and caches
        page = requests_timed(client, page_urls, max(1, repeat // 2))
        with override_settings(DASHBOARD_CACHE_S=0):
            page_uncached = requests_timed(client, page_urls, max(1, repeat // 2))
        summary = requests_timed(client, summary_urls, max(1, repeat // len(SUMMARY_GROUPS)))
        csv_export = requests_timed(
            client, [f"/api/v1/spend/summary.csv?group_by=project&{period}"], max(1, repeat // 5)
        )
        start, end = today - timedelta(days=HISTORY_DAYS - 1), today + timedelta(days=1)
        idle_nodes = [timed(lambda: selectors.idle_cost_nodes(start=start, end=end))[0] for _ in range(5)]
        baseline = [timed(lambda g=g: _from_entries(start, end, g))[0] for g in ("provider", "team", "gpu_model")]
        floor = requests_timed(client, ["/healthz"], repeat)
        everything = selectors.spend_totals(start=start - timedelta(days=1), end=end).total_usd
        check_entries = LedgerEntry.objects.aggregate(s=Sum("compute_usd") + Sum("energy_usd"))["s"]
    page_p, summary_p = percentiles_ms(page), percentiles_ms(summary)
    return {
        "bench": "spend",
        "nodes": nodes,
        "ledger_entries": entries,
        "ledger_days": days,
        "build_s": round(build_s, 1),
        "spend_page": page_p,
        "spend_page_uncached": percentiles_ms(page_uncached),
        "summary_api": summary_p,
        "summary_csv": percentiles_ms(csv_export),
        "idle_cost_nodes_selector": percentiles_ms(idle_nodes),
        "baseline_summary_from_ledger_entries": percentiles_ms(baseline),
        "healthz_floor": percentiles_ms(floor),
        "totals_agree": everything == check_entries,
        "target_p95_ms": TARGET_P95_MS,
        "meets_target": page_p["p95_ms"] <= TARGET_P95_MS and summary_p["p95_ms"] <= TARGET_P95_MS,
    }


def run_scaled(scale: float) -> dict:
    """``run`` with the node count multiplied by ``scale`` (1.0: 10,000 nodes, 7.2 M ledger hours)."""
    return run(nodes=max(12, round(10_000 * scale)))
