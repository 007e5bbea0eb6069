"""Reads of spend from the daily roll-up (LedgerDay): totals, groups by dimension, egress, idle-cost nodes and
reconciliation against what AWS billed.

Unused commitments (reserved instances, savings plans and CUDs paid for and not used) are LedgerDay rows of their
own with no site (and the commitment's team, or none): they count in every total, and grouped by site they are
the "Unused commitments" row.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import date, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import Count, DecimalField, QuerySet, Sum, Value
from django.db.models.functions import Coalesce

from billing.ledger import reconciliation_list
from billing.models import BilledCost, EgressRecord, LedgerDay, LedgerNodeDay
from billing.selectors.periods import day_bounds
from fleet.catalog import gpu_key
from fleet.choices import NodeLifecycle, ProviderKind
from fleet.models import Node, Project, Provider, Site, Team

SPEND_DIMENSIONS = ("provider", "site", "team", "project", "gpu_model", "lifecycle", "day")

ZERO = Decimal(0)
CENT = Decimal("0.01")
UNASSIGNED = "Unassigned"
UNUSED_COMMITMENTS = "Unused commitments"
# The label of a group whose key is None, by dimension (site: only the rows of unused commitments have none).
NONE_LABELS = {"site": UNUSED_COMMITMENTS}
# The LedgerDay column each dimension groups by.
DIMENSION_COLUMNS = {
    "provider": "provider_id",
    "site": "site_id",
    "team": "team_id",
    "project": "project_id",
    "gpu_model": "gpu_model",
    "lifecycle": "lifecycle",
    "day": "day",
}


@dataclass(frozen=True)
class SpendTotals:
    """What a set of ledger rows adds up to: total = compute + energy + unused commitments. Idle $, broken $ (on
    GPUs with an open XID/ECC/lost health event: "broken capacity") and covered $ (paid at a committed rate) are
    parts of compute $; co2e_kg is the kgCO2e of the energy."""

    compute_usd: Decimal = ZERO
    energy_usd: Decimal = ZERO
    total_usd: Decimal = ZERO
    idle_usd: Decimal = ZERO
    energy_kwh: Decimal = ZERO
    gpu_hours: Decimal = ZERO
    idle_gpu_hours: Decimal = ZERO
    co2e_kg: Decimal = ZERO
    broken_gpu_hours: Decimal = ZERO
    broken_usd: Decimal = ZERO
    covered_usd: Decimal = ZERO
    unused_commitment_usd: Decimal = ZERO

    def as_dict(self) -> dict[str, Decimal]:
        """The figures as a plain dict (for JSON, CSV and templates)."""
        return asdict(self)


# The LedgerDay columns summed, in SpendTotals' order (new figures go at the end: CSV readers index the columns).
SUMMED_FIELDS = tuple(f.name for f in fields(SpendTotals))


def ledger_day_rows(*, start: date, end: date, teams: list[int] | None = None) -> QuerySet[LedgerDay]:
    """LedgerDay rows of ``[start, end)`` in the team scope (unordered: for aggregation)."""
    return LedgerDay.objects.filter(day__gte=start, day__lt=end).for_teams(teams).order_by()


def summed_aggregates() -> dict:
    money = DecimalField(max_digits=20, decimal_places=6)
    return {name: Coalesce(Sum(name), Value(ZERO), output_field=money) for name in SUMMED_FIELDS}


def totals_of(row: dict) -> SpendTotals:
    return SpendTotals(**{name: row.get(name) or ZERO for name in SUMMED_FIELDS})


def spend_totals(*, start: date, end: date, teams: list[int] | None = None) -> SpendTotals:
    """The SpendTotals of ``[start, end)`` in the team scope (every SUMMED_FIELDS figure)."""
    if teams is not None and not teams:
        return SpendTotals()
    return totals_of(ledger_day_rows(start=start, end=end, teams=teams).aggregate(**summed_aggregates()))


def _labels(dimension: str, keys: list) -> dict:
    """Display labels of the group keys of one dimension (one query at most)."""
    ids = [k for k in keys if k is not None]
    if dimension == "provider":
        return {p.pk: p.name for p in Provider.objects.filter(pk__in=ids)}
    if dimension == "site":
        return {s.pk: s.name for s in Site.objects.filter(pk__in=ids)}
    if dimension == "team":
        return {t.pk: t.name for t in Team.objects.filter(pk__in=ids)}
    if dimension == "project":
        return {p.pk: str(p) for p in Project.objects.select_related("team").filter(pk__in=ids)}
    if dimension == "lifecycle":
        return dict(NodeLifecycle.choices)
    return {}


def spend_by(*, dimension: str, start: date, end: date, teams: list[int] | None = None) -> list[dict]:
    """Spend of ``[start, end)`` grouped by one of SPEND_DIMENSIONS: [{"key", "label", <SpendTotals fields>}].

    Sorted by total $ descending (then label); ``day`` is sorted by day ascending with every day of the
    period present (zeros where nothing was spent). ``gpu_model`` groups by catalogue key (H100), merging the
    NVML names that map to one model (key "": "Unknown", or "Unused commitments" when that is all it holds). Rows
    without a team or project have key None, label "Unassigned"; without a site (the rows of unused
    commitments), key None, label "Unused commitments".
    """
    if dimension not in SPEND_DIMENSIONS:
        raise ValueError(f"Unknown spend dimension {dimension!r}; choose from {', '.join(SPEND_DIMENSIONS)}.")
    column = DIMENSION_COLUMNS[dimension]
    if teams is not None and not teams:
        grouped = []
    else:
        grouped = list(
            ledger_day_rows(start=start, end=end, teams=teams)
            .values(column)
            .annotate(**summed_aggregates())
            .order_by(column)
        )
    return _spend_rows(dimension=dimension, grouped=grouped, start=start, end=end)


def _spend_rows(*, dimension: str, grouped: list[dict], start: date, end: date) -> list[dict]:
    """Rows of one dimension from its grouped sums ({<column>: key, <summed fields>}), labelled and sorted."""
    column = DIMENSION_COLUMNS[dimension]
    if dimension == "day":
        by_day = {row["day"]: totals_of(row) for row in grouped}
        days = [start + timedelta(days=i) for i in range(max(0, (end - start).days))]
        return [{"key": d, "label": d.isoformat(), **by_day.get(d, SpendTotals()).as_dict()} for d in days]
    if dimension == "gpu_model":
        merged: dict[str, dict] = {}
        for row in grouped:
            key = gpu_key(row[column]) if row[column] else ""
            into = merged.setdefault(key, dict.fromkeys(SUMMED_FIELDS, ZERO))
            for name in SUMMED_FIELDS:
                into[name] += row[name]
        rows = [{"key": key, "label": key or _no_model_label(sums), **sums} for key, sums in merged.items()]
    else:
        labels = _labels(dimension, [row[column] for row in grouped])
        rows = [
            {
                "key": row[column],
                "label": (
                    NONE_LABELS.get(dimension, UNASSIGNED)
                    if row[column] is None
                    else str(labels.get(row[column], row[column]))
                ),
                **totals_of(row).as_dict(),
            }
            for row in grouped
        ]
    return sorted(rows, key=lambda r: (-r["total_usd"], r["label"]))


def _no_model_label(sums: dict) -> str:
    """The label of the GPU-model group without a model: the rows of unused commitments have none, as may nodes."""
    only_commitments = sums["unused_commitment_usd"] > 0 and sums["total_usd"] == sums["unused_commitment_usd"]
    return UNUSED_COMMITMENTS if only_commitments and not sums["gpu_hours"] else "Unknown"


def spend_breakdown(
    *, dimensions: tuple[str, ...], start: date, end: date, teams: list[int] | None = None
) -> tuple[SpendTotals, dict[str, list[dict]]]:
    """The totals and the rows of several dimensions (as ``spend_by``) from one scan of the period's rows
    (GROUP BY GROUPING SETS): what a page with a table per dimension reads."""
    unknown = set(dimensions) - set(SPEND_DIMENSIONS)
    if unknown:
        raise ValueError(f"Unknown spend dimension(s) {sorted(unknown)}; choose from {', '.join(SPEND_DIMENSIONS)}.")
    grouped: dict[str, list[dict]] = {dim: [] for dim in dimensions}
    totals = SpendTotals()
    if teams is None or teams:
        columns = [DIMENSION_COLUMNS[dim] for dim in dimensions]
        sets = ", ".join([f"({c})" for c in columns] + ["()"])
        flags = ", ".join(f"GROUPING({c})" for c in columns) or "0"
        sums = ", ".join(f"COALESCE(SUM({name}), 0)" for name in SUMMED_FIELDS)
        where, params = "day >= %s AND day < %s", [start, end]
        if teams is not None:
            where += " AND team_id = ANY(%s)"  # LedgerDay.objects.for_teams(teams), in SQL
            params.append(list(teams))
        sql = (
            f"SELECT ARRAY[{flags}], {', '.join(columns) + ',' if columns else ''} {sums} "  # noqa: S608 - fixed names
            f"FROM {LedgerDay._meta.db_table} WHERE {where} GROUP BY GROUPING SETS ({sets})"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            for flags_row, *values in cursor.fetchall():
                keys, figures = values[: len(columns)], dict(zip(SUMMED_FIELDS, values[len(columns) :], strict=True))
                grouped_by = [dim for dim, flag in zip(dimensions, flags_row, strict=True) if flag == 0]
                if not grouped_by:
                    totals = totals_of(figures)
                    continue
                dim = grouped_by[0]
                grouped[dim].append({DIMENSION_COLUMNS[dim]: keys[dimensions.index(dim)], **figures})
    return totals, {dim: _spend_rows(dimension=dim, grouped=grouped[dim], start=start, end=end) for dim in dimensions}


def egress_record_rows(*, start: date, end: date, teams: list[int] | None = None) -> QuerySet[EgressRecord]:
    """Egress records of data that moved in ``[start, end)`` in the team scope.

    Planned records (written by a placement before its data has moved) are not spend yet and are left out.
    """
    since, until = day_bounds(start, end)
    rows = EgressRecord.objects.filter(occurred_at__gte=since, occurred_at__lt=until, planned=False)
    return rows.for_teams(teams).order_by()


def egress_by_route(*, start: date, end: date, teams: list[int] | None = None) -> list[dict]:
    """Egress of ``[start, end)`` per route: [{"source", "destination", "bytes", "usd", "records"}], $ desc."""
    if teams is not None and not teams:
        return []
    rows = (
        egress_record_rows(start=start, end=end, teams=teams)
        .values("source", "destination")
        .annotate(bytes=Sum("bytes"), usd=Sum("usd"), records=Count("pk"))
        .order_by("-usd", "source", "destination")
    )
    return [{**row, "bytes": int(row["bytes"] or 0), "usd": row["usd"] or ZERO} for row in rows]


def egress_total_usd(*, start: date, end: date, teams: list[int] | None = None) -> Decimal:
    """Total egress $ of ``[start, end)`` in the team scope."""
    if teams is not None and not teams:
        return ZERO
    return egress_record_rows(start=start, end=end, teams=teams).aggregate(usd=Sum("usd"))["usd"] or ZERO


def idle_cost_nodes(*, start: date, end: date, teams: list[int] | None = None, limit: int = 10) -> list[dict]:
    """The nodes whose idle GPUs cost most in ``[start, end)``: node id/name/site/team, idle $ and GPU-hours.

    Reads LedgerNodeDay (per node-day sums of the ledger); a node's idle $ counts for, and is labelled with, the
    team it was booked to (a node that moved between teams in the range has a row per team).
    """
    if teams is not None and not teams:
        return []
    entries = LedgerNodeDay.objects.filter(day__gte=start, day__lt=end).for_teams(teams).order_by()
    top = list(
        entries.values("node_id", "team_id")
        .annotate(idle_usd=Sum("idle_usd"), idle_gpu_hours=Sum("idle_gpu_hours"))
        .filter(idle_usd__gt=0)
        .order_by("-idle_usd", "node_id", "team_id")[:limit]
    )
    nodes = Node.objects.select_related("site").in_bulk([row["node_id"] for row in top])
    team_names = dict(Team.objects.filter(pk__in={row["team_id"] for row in top}).values_list("pk", "name"))
    result = []
    for row in top:
        node = nodes.get(row["node_id"])
        result.append(
            {
                "node_id": row["node_id"],
                "name": node.name if node else f"#{row['node_id']}",
                "site": node.site.name if node else "",
                "team": team_names.get(row["team_id"], UNASSIGNED),
                "idle_usd": row["idle_usd"],
                "idle_gpu_hours": row["idle_gpu_hours"],
            }
        )
    return result


def reconciliation_by_provider(*, start: date, end: date) -> list[dict]:
    """Estimated (ledger) against billed spend per day for each cloud account (AWS Cost Explorer, or any cloud's
    FOCUS export) with billed cost in ``[start, end)``: [{"provider", "rows": billing.ledger.reconciliation_list(...)}].
    Whole accounts, so not team-scoped."""
    providers = (
        Provider.objects.exclude(kind=ProviderKind.ONPREM)
        .filter(
            pk__in=BilledCost.objects.filter(day__gte=start, day__lt=end).values("provider_id"),
        )
        .order_by("name")
    )
    return [
        {"provider": provider, "rows": reconciliation_list(provider=provider, start=start, end=end)}
        for provider in providers
    ]
