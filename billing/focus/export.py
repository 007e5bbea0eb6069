"""The ledger as a FinOps FOCUS 1.0 dataset (CSV), streamed: what ``GET /api/v1/spend/focus.csv`` sends.

Rows (every one ``ChargeCategory`` "Usage", ``ServiceCategory`` "Compute", in USD; a charge period is one UTC
day, ``[midnight, next midnight)``, inside its calendar month's billing period):

- **compute**: one per UTC day × node × team/project share × commitment × lifecycle, summed from ``LedgerEntry``
  (a sliced node-hour from its ``LedgerShare`` rows instead, one per holder). ``BilledCost`` = ``EffectiveCost``
  = the ledger's compute $ (what Fleetdeck estimates the hours cost, commitments included); ``ListCost`` =
  ``ContractedCost`` = the same, except on hours a commitment covered, where they are the un-committed value
  (``rate_usd_per_h`` × hours: the on-demand price less the account's discounts; the ledger keeps no undiscounted
  price, so ListCost is never above ContractedCost). ``PricingCategory``: "Committed" when a commitment covered the
  hours (``CommitmentDiscountStatus`` "Used"), "Dynamic" for spot, else "Standard". Quantities are node-hours
  (times the share's fraction). A node-hour a spend-based commitment covered only in part is in the commitment's
  row; ``x_FleetdeckCoveredCost`` says how much of it was paid at the committed rate.
- **energy** (on-prem): one per compute row whose hours paid energy: kWh × the site's $/kWh (PUE included).
- **unused commitment**: one per UTC day × commitment whose hours left some of it unused (``CommitmentHour``),
  ``CommitmentDiscountStatus`` "Unused", ``ChargeFrequency`` "Recurring", paid by the commitment's team.

So the export's ``BilledCost`` adds up to ``billing.selectors.spend_totals(...).total_usd`` of the same period and
team scope (compute + energy + unused commitments). Every text cell goes through ``core.csv`` (names are
user-settable); two queries in all (a server-side cursor each), however many rows.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db import connection

from billing.choices import CommitmentBasis, CommitmentKind
from billing.focus.columns import CURRENCY, EXPORT_HEADER, focus_decimal, focus_midnight
from billing.ledger import LEDGER_ROWS_SQL
from core.csv import SafeWriter
from fleet.choices import NodeLifecycle, ProviderKind

ZERO = Decimal(0)
FETCH_ROWS = 2000  # rows fetched from a server-side cursor at a time
FLUSH_ROWS = 500  # CSV rows per chunk sent
PROVIDER_NAMES = {ProviderKind.AWS: "AWS", ProviderKind.GCP: "Google Cloud", ProviderKind.ONPREM: "On-Prem"}
SERVICE_NAMES = {
    ProviderKind.AWS: "Amazon Elastic Compute Cloud",
    ProviderKind.GCP: "Compute Engine",
    ProviderKind.ONPREM: "On-Prem GPU Servers",
}
ENERGY_SERVICE_NAME = "On-Prem Energy"
COMMITMENT_CATEGORIES = {CommitmentBasis.COUNT: "Usage", CommitmentBasis.SPEND: "Spend"}
COMMITMENT_TYPES = dict(CommitmentKind.choices)

# One row per UTC day × node × share holder × commitment × lifecycle: an entry, or in its place its shares (the
# daily sums' rows, billing.ledger.LEDGER_ROWS_SQL), with what the row's text needs joined on.
COMPUTE_SQL = f"""
WITH r AS ({LEDGER_ROWS_SQL})
SELECT r.day, r.node_id, r.lifecycle, r.commitment_id, max(r.gpu_model), max(r.gpu_count), max(r.rate_usd_per_h),
       bool_and(r.priced), sum(r.hours), sum(r.uncommitted_usd), sum(r.compute_usd), sum(r.covered_usd),
       sum(r.energy_kwh), sum(r.energy_usd), sum(r.gpu_hours), sum(r.idle_gpu_hours), sum(r.idle_usd),
       sum(r.co2e_kg), sum(r.broken_gpu_hours), sum(r.broken_usd),
       n.name, n.external_id, n.instance_type, s.name, s.region, s.zone, p.name, p.kind, p.account_id,
       t.slug, pt.slug, pr.slug, c.name, c.kind, c.basis
FROM r
JOIN fleet_node n ON n.id = r.node_id
JOIN fleet_site s ON s.id = r.site_id
JOIN fleet_provider p ON p.id = r.provider_id
LEFT JOIN fleet_team t ON t.id = r.team_id
LEFT JOIN fleet_project pr ON pr.id = r.project_id
LEFT JOIN fleet_team pt ON pt.id = pr.team_id
LEFT JOIN billing_commitment c ON c.id = r.commitment_id
WHERE (%(teams)s::bigint[] IS NULL OR r.team_id = ANY(%(teams)s::bigint[]))
GROUP BY r.day, r.node_id, r.team_id, r.project_id, r.lifecycle, r.commitment_id, r.site_id, r.provider_id,
         n.id, s.id, p.id, t.id, pr.id, pt.id, c.id
ORDER BY r.day, r.node_id, r.team_id NULLS FIRST, r.project_id NULLS FIRST, r.commitment_id NULLS FIRST, r.lifecycle
"""  # noqa: S608 - composed of constants, never input

# One row per UTC day × commitment with an unused part, paid by the commitment's team (as the daily sums' rows
# without a site, billing.commitments).
UNUSED_SQL = """
SELECT (ch.hour AT TIME ZONE 'UTC')::date AS day, c.id, c.name, c.kind, c.basis, c.region, c.instance_type,
       p.name, p.kind, p.account_id, t.slug, count(*) FILTER (WHERE ch.unused_usd > 0), sum(ch.unused_usd)
FROM billing_commitmenthour ch
JOIN billing_commitment c ON c.id = ch.commitment_id
JOIN fleet_provider p ON p.id = c.provider_id
LEFT JOIN fleet_team t ON t.id = c.team_id
WHERE ch.hour >= %(first)s AND ch.hour < %(last)s
  AND (%(teams)s::bigint[] IS NULL OR c.team_id = ANY(%(teams)s::bigint[]))
GROUP BY 1, c.id, p.id, t.id
HAVING sum(ch.unused_usd) > 0
ORDER BY 1, c.id
"""


def _month_bounds(day: date) -> tuple[str, str]:
    start = day.replace(day=1)
    end = (start + timedelta(days=32)).replace(day=1)
    return focus_midnight(start), focus_midnight(end)


def _account(name: str, kind: str, account_id: str) -> dict:
    account = account_id or f"fleetdeck-{name}"  # on-prem providers have no cloud account
    provider = PROVIDER_NAMES.get(kind, kind)
    return {
        "ProviderName": provider,
        "PublisherName": provider,
        "InvoiceIssuerName": provider,
        "BillingAccountId": account,
        "BillingAccountName": name,
        "SubAccountId": account,
        "SubAccountName": name,
    }


def _period(day: date) -> dict:
    billing_start, billing_end = _month_bounds(day)
    return {
        "BillingCurrency": CURRENCY,
        "BillingPeriodStart": billing_start,
        "BillingPeriodEnd": billing_end,
        "ChargePeriodStart": focus_midnight(day),
        "ChargePeriodEnd": focus_midnight(day + timedelta(days=1)),
        "ChargeCategory": "Usage",
        "ServiceCategory": "Compute",
    }


def _tags(**tags: str | None) -> str:
    return json.dumps({key: value for key, value in tags.items() if value}, sort_keys=True)


def _commitment(commitment_id: int, name: str, kind: str, basis: str, status: str) -> dict:
    return {
        "CommitmentDiscountId": f"fleetdeck-commitment-{commitment_id}",
        "CommitmentDiscountName": name,
        "CommitmentDiscountCategory": COMMITMENT_CATEGORIES.get(basis),
        "CommitmentDiscountType": COMMITMENT_TYPES.get(kind, kind),
        "CommitmentDiscountStatus": status,
    }


def _compute_rows(record: tuple) -> list[dict]:
    """The compute row of one grouped record, and its energy row when its hours paid energy."""
    (
        day,
        node_id,
        lifecycle,
        commitment_id,
        gpu_model,
        gpu_count,
        rate,
        priced,
        hours,
        uncommitted,
        compute,
        covered,
        kwh,
        energy_usd,
        gpu_hours,
        idle_gpu_hours,
        idle_usd,
        co2e,
        broken_gpu_hours,
        broken_usd,
        node_name,
        external_id,
        instance_type,
        site_name,
        region,
        zone,
        provider_name,
        kind,
        account_id,
        team_slug,
        project_team_slug,
        project_slug,
        commitment_name,
        commitment_kind,
        commitment_basis,
    ) = record
    committed = commitment_id is not None
    pricing = "Committed" if committed else ("Dynamic" if lifecycle == NodeLifecycle.SPOT else "Standard")
    list_cost = uncommitted if committed else compute
    has_energy = energy_usd != ZERO
    cloud = kind != ProviderKind.ONPREM
    project = f"{project_team_slug}/{project_slug}" if project_slug else None
    what = instance_type or "server"
    common = {
        **_period(day),
        **_account(provider_name, kind, account_id),
        "AvailabilityZone": zone or None,
        "RegionId": region or None,
        "RegionName": region or None,
        "ResourceId": external_id or f"fleetdeck-node-{node_id}",
        "ResourceName": node_name,
        "ResourceType": "Virtual Machine" if cloud else "Server",
        "Tags": _tags(team=team_slug, project=project, gpu_model=gpu_model, site=site_name),
        "x_FleetdeckNodeId": str(node_id),
        "x_FleetdeckLifecycle": lifecycle,
        "x_FleetdeckPriced": "true" if priced else "false",
    }
    compute_row = {
        **common,
        "BilledCost": compute,
        "EffectiveCost": compute,
        "ListCost": list_cost,
        "ContractedCost": list_cost,
        "ListUnitPrice": rate,
        "ContractedUnitPrice": rate,
        # "… GPU running in <region>": how a VM's charge reads (the FOCUS importer counts such GCP rows).
        "ChargeDescription": f"{what} with {gpu_count} x {gpu_model or 'unknown'} GPU running in {region or site_name}",
        "ChargeFrequency": "Usage-Based",
        "PricingCategory": pricing,
        "PricingQuantity": hours,
        "PricingUnit": "Hours",
        "ConsumedQuantity": hours,
        "ConsumedUnit": "Hours",
        "ServiceName": SERVICE_NAMES.get(kind, kind),
        "SkuId": instance_type or f"gpu-server:{gpu_model}",
        "SkuPriceId": f"{kind}:{region or site_name}:{what}:{lifecycle}",
        "x_FleetdeckGpuHours": gpu_hours,
        "x_FleetdeckIdleGpuHours": idle_gpu_hours,
        "x_FleetdeckIdleCost": idle_usd,
        "x_FleetdeckBrokenGpuHours": broken_gpu_hours,
        "x_FleetdeckBrokenCost": broken_usd,
        "x_FleetdeckCoveredCost": covered,
        "x_FleetdeckEnergyKwh": ZERO if has_energy else kwh,
        "x_FleetdeckCo2eKg": ZERO if has_energy and co2e is not None else co2e,
    }
    if committed:
        compute_row.update(_commitment(commitment_id, commitment_name, commitment_kind, commitment_basis, "Used"))
    if not has_energy:
        return [compute_row]
    usd_per_kwh = energy_usd / kwh if kwh else None
    energy_row = {
        **common,
        "BilledCost": energy_usd,
        "EffectiveCost": energy_usd,
        "ListCost": energy_usd,
        "ContractedCost": energy_usd,
        "ListUnitPrice": usd_per_kwh,
        "ContractedUnitPrice": usd_per_kwh,
        "ChargeDescription": f"Energy of {node_name} in {site_name} (PUE included)",
        "ChargeFrequency": "Usage-Based",
        "PricingCategory": "Standard",
        "PricingQuantity": kwh,
        "PricingUnit": "kWh",
        "ConsumedQuantity": kwh,
        "ConsumedUnit": "kWh",
        "ServiceName": ENERGY_SERVICE_NAME,
        "SkuId": "energy",
        "SkuPriceId": f"{kind}:{site_name}:energy",
        "x_FleetdeckEnergyKwh": kwh,
        "x_FleetdeckCo2eKg": co2e,
    }
    return [compute_row, energy_row]


def _unused_row(record: tuple) -> dict:
    day, commitment_id, name, kind, basis, region, instance_type = record[:7]
    provider_name, provider_kind, account_id, team, hours, unused = record[7:]
    return {
        **_period(day),
        **_account(provider_name, provider_kind, account_id),
        **_commitment(commitment_id, name, kind, basis, "Unused"),
        "BilledCost": unused,
        "EffectiveCost": unused,
        "ListCost": ZERO,
        "ContractedCost": unused,
        "ListUnitPrice": ZERO,
        "ContractedUnitPrice": unused / hours if hours else None,
        "ChargeDescription": f"Unused commitment {name}",
        "ChargeFrequency": "Recurring",
        "PricingCategory": "Committed",
        "PricingQuantity": Decimal(hours),
        "PricingUnit": "Hours",
        "RegionId": region or None,
        "RegionName": region or None,
        "ResourceId": f"fleetdeck-commitment-{commitment_id}",
        "ResourceName": name,
        "ResourceType": COMMITMENT_TYPES.get(kind, kind),
        "ServiceName": SERVICE_NAMES.get(provider_kind, provider_kind),
        "SkuId": instance_type or "commitment",
        "SkuPriceId": f"fleetdeck-commitment-{commitment_id}",
        "Tags": _tags(team=team),
        "x_FleetdeckCoveredCost": ZERO,
    }


def _records(sql: str, params: dict) -> Iterator[tuple]:
    """The rows of one query, fetched from a server-side cursor a few thousand at a time (as
    ``QuerySet.iterator()`` does), so a year of a large fleet never sits in memory at once."""
    server_side = not connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS")
    with connection.chunked_cursor() if server_side else connection.cursor() as cursor:
        cursor.execute(sql, params)
        while batch := cursor.fetchmany(FETCH_ROWS):
            yield from batch


def focus_export_rows(*, start: date, end: date, teams: list[int] | None = None) -> Iterator[dict]:
    """The FOCUS rows (column → value) of the UTC days ``[start, end)`` in the team scope (None: every team;
    [] nothing): compute and energy rows day by day, then the unused commitments."""
    if teams is not None and not teams:
        return
    params = {
        "first": datetime.combine(start, time.min, tzinfo=UTC),
        "last": datetime.combine(end, time.min, tzinfo=UTC),
        "days": None,
        "teams": None if teams is None else list(teams),
    }
    for record in _records(COMPUTE_SQL, params):
        yield from _compute_rows(record)
    for record in _records(UNUSED_SQL, params):
        yield _unused_row(record)


def _cell(value):
    if isinstance(value, Decimal):
        return focus_decimal(value)
    return value  # text (neutralised by SafeWriter) or None (an empty cell)


def focus_export_csv(*, start: date, end: date, teams: list[int] | None = None) -> Iterator[str]:
    """The FOCUS dataset of ``[start, end)`` as CSV text in chunks (header first): for a streaming response."""
    out = io.StringIO()
    writer = SafeWriter(out)
    writer.writerow(EXPORT_HEADER)
    pending = 0
    for row in focus_export_rows(start=start, end=end, teams=teams):
        writer.writerow([_cell(row.get(name)) for name in EXPORT_HEADER])
        pending += 1
        if pending >= FLUSH_ROWS:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
            pending = 0
    yield out.getvalue()
