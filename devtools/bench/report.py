"""Report benchmark: time to build one monthly whole-fleet report (data through billing.selectors, then HTML,
text, CSV and the chart PNG) on 30 days of hourly ledger for 10,000 nodes (7.2 M ledger rows at full scale),
beside the raw aggregate query alone (one SUM over the month's hourly ledger rows) in the same run.

The ledger is written set-based (``INSERT … SELECT … generate_series``) rather than through ledger_compute,
whose own benchmark is ``ledger``; LedgerDay is then rebuilt by the product's ``ledger_days_refresh``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.db import connection

from devtools.bench.common import bench_database, percentiles_ms, timed

BENCH_NODES = 10_000
BENCH_DAYS = 30
TEAMS = 20
RUNS = 7
MONTH_START = date(2026, 4, 1)  # April: 30 days
MONTH_END = date(2026, 5, 1)

ENTRY_SQL = """
INSERT INTO billing_ledgerentry (
    node_id, hour, provider_id, provider_kind, site_id, team_id, project_id, gpu_model, lifecycle, gpu_count,
    active_s, rate_usd_per_h, compute_usd, energy_kwh, energy_usd, gpu_hours, idle_gpu_hours, idle_usd, priced)
SELECT n.id, %(start)s::timestamptz + make_interval(hours => h), s.provider_id, p.kind, n.site_id, n.team_id,
       NULL, r.gpu_model, n.lifecycle, 8, 3600, r.rate, r.rate, r.kwh, r.kwh * 0.2, 8,
       ((n.id * 7 + h) %% 9), r.rate * ((n.id * 7 + h) %% 9) / 8, true
FROM fleet_node n
JOIN fleet_site s ON s.id = n.site_id
JOIN fleet_provider p ON p.id = s.provider_id
JOIN (VALUES ('onprem', 'NVIDIA H100 80GB HBM3', 20.5::numeric, 5.2::numeric),
             ('aws', 'NVIDIA H100 80GB HBM3', 98.32::numeric, 0::numeric),
             ('gcp', 'NVIDIA A100-SXM4-40GB', 29.39::numeric, 0::numeric)) AS r(kind, gpu_model, rate, kwh)
  ON r.kind = p.kind
CROSS JOIN generate_series(0, %(hours)s - 1) h
"""
EGRESS_SQL = """
INSERT INTO billing_egressrecord (occurred_at, source, destination, source_provider_kind, location_class, bytes, usd,
                                  cause, planned, team_id, external_key)
SELECT %(start)s::timestamptz + make_interval(mins => i * 7), 'aws:us-east-1', 'onprem:dc-' || (i %% 3),
       'aws', 'other-cloud', (i %% 50 + 1)::bigint * 10000000000, (i %% 50 + 1) * 0.9, 'manual', false,
       (SELECT id FROM fleet_team ORDER BY id OFFSET (i %% %(teams)s) LIMIT 1), ''
FROM generate_series(0, %(records)s - 1) i
"""


def _fleet(nodes: int) -> None:
    from billing.models import Budget
    from fleet.choices import Continent, NodeLifecycle, ProviderKind
    from fleet.models import Node, Provider, Site, Team

    teams = Team.objects.bulk_create(Team(name=f"Team {i:02d}", slug=f"team-{i:02d}") for i in range(TEAMS))
    sites = []
    for kind, region in (
        (ProviderKind.ONPREM, "amsterdam"),
        (ProviderKind.AWS, "us-east-1"),
        (ProviderKind.GCP, "us-central1"),
    ):
        provider = Provider.objects.create(name=f"bench-{kind}", kind=kind)
        sites.append(
            Site.objects.create(provider=provider, name=f"bench-{region}", region=region, continent=Continent.EUROPE)
        )
    lifecycles = {0: NodeLifecycle.OWNED, 1: NodeLifecycle.ON_DEMAND, 2: NodeLifecycle.SPOT}
    Node.objects.bulk_create(
        (
            Node(
                site=sites[i % 3],
                name=f"bench-{i:05d}",
                lifecycle=lifecycles[i % 3],
                team=teams[i % TEAMS] if i % (TEAMS + 1) else None,
            )
            for i in range(nodes)
        ),
        batch_size=5000,
    )
    Budget.objects.bulk_create(Budget(team=team, monthly_usd=Decimal(250_000)) for team in teams)


def _ledger(days: int) -> dict:
    from billing.ledger import ledger_days_refresh

    start = datetime.combine(MONTH_START, datetime.min.time(), tzinfo=UTC)
    with connection.cursor() as cursor:
        cursor.execute(ENTRY_SQL, {"start": start, "hours": days * 24})
        entries = cursor.rowcount
        cursor.execute(EGRESS_SQL, {"start": start, "records": 5000, "teams": TEAMS})
    day_rows = ledger_days_refresh(days=[MONTH_START + timedelta(days=d) for d in range(days)])
    with connection.cursor() as cursor:
        for table in ("billing_ledgerentry", "billing_ledgerday", "billing_egressrecord", "fleet_node"):
            cursor.execute(f"ANALYZE {table}")
    return {"ledger_entries": entries, "ledger_days": day_rows}


def _raw_aggregate() -> Decimal:
    """The baseline: one SUM over the month's hourly ledger rows, nothing else."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sum(compute_usd + energy_usd) FROM billing_ledgerentry WHERE hour >= %s AND hour < %s",
            [
                datetime.combine(MONTH_START, datetime.min.time(), tzinfo=UTC),
                datetime.combine(MONTH_END, datetime.min.time(), tzinfo=UTC),
            ],
        )
        return cursor.fetchone()[0] or Decimal(0)


def run_scaled(scale: float) -> dict:
    """Build the fleet and its ledger at ``scale`` × 10,000 nodes and time a monthly fleet report."""
    from billing.reports.data import report_data
    from billing.reports.render import report_render

    nodes = max(30, round(BENCH_NODES * scale))
    with bench_database():
        build_s, _ = timed(lambda: _fleet(nodes))
        ledger_s, counts = timed(lambda: _ledger(BENCH_DAYS))

        def build():
            data = report_data(period_start=MONTH_START, period_end=MONTH_END)
            return data, report_render(data)

        build()  # warm-up: templates compiled, fonts loaded, caches of the database warm
        builds, data_only, raws = [], [], []
        for _ in range(RUNS):
            seconds, (data, rendered) = timed(build)
            builds.append(seconds)
            data_only.append(timed(lambda: report_data(period_start=MONTH_START, period_end=MONTH_END))[0])
            raw_s, raw_total = timed(_raw_aggregate)
            raws.append(raw_s)
        # The report total and the hourly ledger's own sum must agree to the cent.
        agree = data.total_usd.quantize(Decimal("0.01")) == Decimal(raw_total).quantize(Decimal("0.01"))
        return {
            "bench": "report",
            "nodes": nodes,
            "days": BENCH_DAYS,
            **counts,
            "report_build": percentiles_ms(builds),
            "report_data_only": percentiles_ms(data_only),
            "raw_aggregate_query": percentiles_ms(raws),
            "runs": RUNS,
            "report_total_usd": str(rendered.total_usd),
            "totals_agree": agree,
            "html_bytes": len(rendered.html.encode()),
            "csv_bytes": len(rendered.csv_bytes),
            "png_bytes": len(rendered.chart_png),
            "setup_s": round(build_s + ledger_s, 1),
        }
