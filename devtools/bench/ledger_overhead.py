"""The ledger benchmark's carbon + commitments overhead: the same world recomputed plain and with cost truth.

*Plain*: no grid intensity, no provider PUE, no commitment. *Cost truth*: the hourly grid intensity of every
site for every hour of the period (``GridIntensityHour``, the most expensive source: one join per node-hour),
the region's shipped intensity and the on-prem site's own value under it, AWS's published PUE, and four
commitments over the AWS nodes (count basis first, then spend basis): reserved instances of a tenth of the
cloud nodes until mid-period and of an eighth from then on (back to back, so no overlap), a regional savings
plan and a smaller account-wide one. Each timed run recomputes the whole period with ``ledger_compute`` after
``VACUUM ANALYZE`` of the ledger tables; the runs alternate plain / cost truth so that drift hits both.
"""

from __future__ import annotations

import time as clock
from collections import defaultdict
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import Sum

INTENSITY_BASE_G = 380


def cost_truth_add(*, start: datetime, days: int) -> dict:
    """Add the intensities, the PUE and the commitments to the bench world; returns what was added."""
    from billing.choices import CommitmentBasis, CommitmentKind
    from billing.commitments import commitment_save
    from billing.models import Commitment, GridIntensity, GridIntensityHour, ProviderPue
    from fleet.models import Node, Provider, Site

    aws = Provider.objects.get(name="bench-aws")
    sites = list(Site.objects.order_by("pk"))
    ProviderPue.objects.create(provider_kind="aws", pue=Decimal("1.135"), source="bench")
    GridIntensity.objects.create(provider_kind="aws", region="us-east-1", g_per_kwh=Decimal(INTENSITY_BASE_G),
                                 source="bench")  # fmt: skip
    Site.objects.filter(provider__kind="onprem").update(carbon_g_per_kwh=Decimal(250))
    GridIntensityHour.objects.bulk_create(
        (
            GridIntensityHour(
                site=site, hour=start + timedelta(hours=h), g_per_kwh=Decimal(INTENSITY_BASE_G + (h * 37) % 200)
            )
            for site in sites
            for h in range(days * 24)
        ),
        batch_size=5000,
    )
    cloud = Node.objects.filter(site__provider=aws).count()
    middle = start.date() + timedelta(days=days // 2)
    ri = {"provider": aws, "kind": CommitmentKind.RESERVED_INSTANCE, "basis": CommitmentBasis.COUNT,
          "region": "us-east-1", "instance_type": "g6.12xlarge"}  # fmt: skip
    sp = {"provider": aws, "kind": CommitmentKind.SAVINGS_PLAN, "basis": CommitmentBasis.SPEND}
    for fields in (
        {**ri, "name": "bench-ri-1", "count": max(1, cloud // 10), "rate_usd_per_h": Decimal("2.60"),
         "start": start.date() - timedelta(days=200), "end": middle},
        {**ri, "name": "bench-ri-2", "count": max(1, cloud // 8), "rate_usd_per_h": Decimal("2.55"),
         "start": middle, "end": middle + timedelta(days=365)},
        {**sp, "name": "bench-sp-ec2", "region": "us-east-1", "hourly_commitment_usd": Decimal(cloud) / 2,
         "discount_pct": Decimal(28), "start": start.date() - timedelta(days=30),
         "end": start.date() + timedelta(days=335)},
        {**sp, "name": "bench-sp-compute", "hourly_commitment_usd": Decimal(cloud) / 5, "discount_pct": Decimal(20),
         "start": start.date(), "end": start.date() + timedelta(days=3 * 365)},
    ):  # fmt: skip
        commitment_save(commitment=Commitment(**fields))
    return {"commitments": 4, "intensity_hours": len(sites) * days * 24, "cloud_nodes": cloud}


def cost_truth_remove() -> None:
    """Take the intensities, the PUE and the commitments out again (raw SQL: the ledger still points at them)."""
    with connection.cursor() as cursor:
        cursor.execute("UPDATE billing_ledgerentry SET commitment_id = NULL WHERE commitment_id IS NOT NULL")
        for table in ("billing_commitmenthour", "billing_commitment", "billing_gridintensityhour",
                      "billing_gridintensity", "billing_providerpue"):  # fmt: skip
            cursor.execute(f"DELETE FROM {table}")  # noqa: S608 - constant table names
        cursor.execute("UPDATE fleet_site SET carbon_g_per_kwh = NULL")


def _statement_kinds() -> dict[str, str]:
    from billing import commitments, ledger

    names = {
        "INSERT_DAY_SQL": "insert_day",
        "DELETE_SQL": "delete",
        "SHARE_DELETE_SQL": "share_delete",
        "SHARE_INSERT_SQL": "share_insert",
        "DAY_DELETE_SQL": "day_delete",
        "DAY_REFRESH_SQL": "day_refresh",
        "NODE_DAY_DELETE_SQL": "node_day_delete",
        "NODE_DAY_REFRESH_SQL": "node_day_refresh",
        "UNPRICED_SQL": "unpriced",
    }
    kinds = {getattr(ledger, name): label for name, label in names.items() if hasattr(ledger, name)}
    for name, label in (
        ("RESET_SQL", "commitments_reset"),
        ("HOURS_DELETE_SQL", "commitments_hours_delete"),
        ("COUNT_APPLY_SQL", "commitments_count_apply"),
        ("SPEND_APPLY_SQL", "commitments_spend_apply"),
        ("UNUSED_DAY_DELETE_SQL", "commitments_unused_delete"),
        ("COMMITMENT_UNUSED_DAY_SQL", "commitments_unused_days"),
    ):
        kinds[getattr(commitments, name)] = label
    return kinds


@contextmanager
def statements_timed(into: dict[str, float]):
    """Sum the seconds of each kind of statement the ledger runs into ``into`` (label → s)."""
    kinds = _statement_kinds()

    def wrapper(execute, sql, params, many, context):
        started = clock.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            into[kinds.get(sql, "other")] += clock.perf_counter() - started

    with connection.execute_wrapper(wrapper):
        yield


def overhead_measure(*, start: datetime, end: datetime, rounds: int, target_pct: float) -> dict:
    """Recompute [start, end) plain and with cost truth, ``rounds`` times each, alternately; return the figures.

    Starts and ends with the plain world (as ``run_scaled`` built it)."""
    from billing.ledger import ledger_compute
    from billing.models import CommitmentHour, LedgerDay, LedgerEntry

    days = (end - start).days
    times: dict[str, list[float]] = {"plain": [], "cost_truth": []}
    phases: dict[str, list[dict]] = {"plain": [], "cost_truth": []}
    added: dict = {}
    checks: dict = {}
    for _ in range(rounds):
        for mode in ("plain", "cost_truth"):
            if mode == "cost_truth":
                added = cost_truth_add(start=start, days=days)
            with connection.cursor() as cursor:
                for table in ("billing_ledgerentry", "billing_ledgerday", "billing_ledgernodeday"):
                    cursor.execute(f"VACUUM ANALYZE {table}")  # noqa: S608 - constant table names
            spent: dict[str, float] = defaultdict(float)
            with statements_timed(spent):
                started = clock.perf_counter()
                ledger_compute(start=start, end=end, now=end)
                times[mode].append(clock.perf_counter() - started)
            # Deferred foreign-key checks at COMMIT, and Python: what no statement accounts for.
            spent["commit_and_python"] = times[mode][-1] - sum(spent.values())
            phases[mode].append({k: round(v, 2) for k, v in sorted(spent.items(), key=lambda kv: -kv[1]) if v >= 0.005})
            if mode == "cost_truth":
                entries = LedgerEntry.objects.filter(hour__gte=start, hour__lt=end)
                hours = CommitmentHour.objects.aggregate(used=Sum("used_usd"), unused=Sum("unused_usd"))
                checks = {
                    "covered_entries": entries.filter(covered_usd__gt=0).count(),
                    "entries_with_co2e": entries.exclude(co2e_kg=None).count(),
                    "commitment_hours": CommitmentHour.objects.count(),
                    "commitment_used_usd": str(hours["used"]),
                    "commitment_unused_usd": str(hours["unused"]),
                    "unused_day_rows": LedgerDay.objects.filter(site=None).count(),
                }
                cost_truth_remove()
    plain, truth = min(times["plain"]), min(times["cost_truth"])
    overhead = (truth - plain) * 100 / plain
    return {
        "overhead_rounds": rounds,
        "overhead_plain_s": [round(t, 2) for t in times["plain"]],
        "overhead_cost_truth_s": [round(t, 2) for t in times["cost_truth"]],
        "overhead_pct": round(overhead, 1),
        "overhead_target_pct": target_pct,
        "overhead_meets_target": overhead <= target_pct,
        "overhead_world": added,
        "overhead_checks": checks,
        "overhead_phases_plain_s": phases["plain"][times["plain"].index(plain)],
        "overhead_phases_cost_truth_s": phases["cost_truth"][times["cost_truth"].index(truth)],
    }
