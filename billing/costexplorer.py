"""What AWS itself billed: daily totals and data-transfer records from Cost Explorer (``ce.get_cost_and_usage``).

One call per import (DAILY, UnblendedCost and UsageQuantity, grouped by USAGE_TYPE, every page followed through
``NextPageToken``) becomes a ``BilledCost`` row per day and an ``EgressRecord`` per day and data-transfer usage
type (cause ``cost-explorer``).

``BilledCost`` is the counterpart of the ledger's estimate, which prices EC2 instance hours only: it sums only
the EC2 instance usage types (AWS usage types ``[REGION-]BoxUsage:<type>`` on-demand, ``SpotUsage:<type>``,
``DedicatedUsage:<type>``, ``HostUsage:<type>`` / ``HostBoxUsage``; see INSTANCE_USAGE_MARKERS). EBS volumes,
snapshots, S3, data transfer, support and every other service's usage are left out, so reconciliation compares
like with like (data transfer is imported as egress records instead). Both are keyed, so importing a day
again updates it. A response that does not say what we need (an amount missing, a unit we do not know) is
refused whole, with an error naming the day and usage type, and nothing is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation

from django.db import transaction

from billing.choices import EgressCause, LocationClass
from billing.models import BilledCost, EgressRecord
from fleet.choices import ProviderKind
from fleet.inventory.base import continent_for_region
from fleet.models import Provider

CE_REGION = "us-east-1"  # Cost Explorer has one endpoint
COST_METRIC = "UnblendedCost"
USAGE_METRIC = "UsageQuantity"
DATA_TRANSFER_MARKERS = ("DataTransfer", "AWS-Out-Bytes", "AWS-In-Bytes", "-Out-Bytes")
# EC2 instance-hour usage types (on-demand/reserved, spot, dedicated instances, dedicated hosts), with or without
# a region prefix: what BilledCost sums.
INSTANCE_USAGE_MARKERS = ("BoxUsage", "SpotUsage", "DedicatedUsage", "HostUsage")
BYTES_PER_UNIT = {"GB": 10**9, "GiB": 2**30, "Bytes": 1, "TB": 10**12}
PAGES_MAX = 1000  # a runaway NextPageToken loop stops here
INTERNET = "internet"
# Region prefixes of AWS usage types (us-east-1 usage types carry none). From the AWS billing docs'
# "usage type" region codes; unknown codes are kept as they are.
AWS_REGION_CODES = {
    "USE1": "us-east-1",
    "USE2": "us-east-2",
    "USW1": "us-west-1",
    "USW2": "us-west-2",
    "CAN1": "ca-central-1",
    "SAE1": "sa-east-1",
    "EU": "eu-west-1",
    "EUW1": "eu-west-1",
    "EUW2": "eu-west-2",
    "EUW3": "eu-west-3",
    "EUC1": "eu-central-1",
    "EUC2": "eu-central-2",
    "EUN1": "eu-north-1",
    "EUS1": "eu-south-1",
    "APN1": "ap-northeast-1",
    "APN2": "ap-northeast-2",
    "APN3": "ap-northeast-3",
    "APS1": "ap-southeast-1",
    "APS2": "ap-southeast-2",
    "APS3": "ap-south-1",
    "APS4": "ap-southeast-3",
    "APE1": "ap-east-1",
    "MES1": "me-south-1",
    "MEC1": "me-central-1",
    "AFS1": "af-south-1",
}
REGION_CODE_RE = re.compile(r"^[A-Z]{3}\d$")


class CostExplorerError(Exception):
    """Cost Explorer answered with something we cannot turn into costs."""


@dataclass(frozen=True)
class TransferRoute:
    """Where a data-transfer usage type says data moved."""

    source: str
    destination: str
    location_class: str


@dataclass
class CostImportReport:
    """What one import wrote."""

    provider: str
    start: date
    end: date
    pages: int = 0
    days: int = 0
    billed_usd: Decimal = Decimal(0)
    egress_records: int = 0
    skipped_usage_types: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        """JSON-ready form (task results, the management command)."""
        return {
            "provider": self.provider,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "pages": self.pages,
            "days": self.days,
            "billed_usd": str(self.billed_usd),
            "egress_records": self.egress_records,
        }


def is_data_transfer(usage_type: str) -> bool:
    """Whether an AWS usage type is data transfer (egress or ingress bytes)."""
    return any(marker in usage_type for marker in DATA_TRANSFER_MARKERS)


def is_instance_usage(usage_type: str) -> bool:
    """Whether an AWS usage type is EC2 instance hours (the ledger's counterpart), e.g. ``USW2-BoxUsage:p5.48xlarge``
    or ``SpotUsage:g5.xlarge``; EBS (``EBS:VolumeUsage.gp3``), S3, data transfer and support are not."""
    return any(marker in usage_type for marker in INSTANCE_USAGE_MARKERS)


def _region(code: str | None) -> str:
    if code is None:
        return "us-east-1"
    return AWS_REGION_CODES.get(code, code.lower())


def transfer_route(usage_type: str) -> TransferRoute:
    """Source, destination and location class of a data-transfer usage type.

    ``USE1-USW2-AWS-Out-Bytes``: us-east-1 → us-west-2; ``USW2-USE1-AWS-In-Bytes``: us-east-1 → us-west-2 (seen
    from the receiving region); ``USE1-DataTransfer-Out-Bytes`` or ``DataTransfer-Out-Bytes`` (us-east-1 has no
    prefix): the region → the internet; ``…-DataTransfer-In-Bytes``: the internet → the region;
    ``…-DataTransfer-Regional-Bytes``: between zones of the region.
    """
    parts = usage_type.split("-")
    codes = []
    while parts and len(codes) < 2 and (parts[0] in AWS_REGION_CODES or REGION_CODE_RE.match(parts[0])):
        codes.append(parts.pop(0))
    rest = "-".join(parts)
    if len(codes) == 2 and rest.startswith("AWS-"):
        here, there = _region(codes[0]), _region(codes[1])
        src, dst = (there, here) if rest.startswith("AWS-In") else (here, there)
        return TransferRoute(f"aws:{src}", f"aws:{dst}", _class_between(src, dst))
    region = _region(codes[0] if codes else None)
    if "Regional" in rest:
        return TransferRoute(f"aws:{region}", f"aws:{region}", LocationClass.SAME_REGION)
    if "-In-" in rest or rest.endswith("In-Bytes"):
        return TransferRoute(INTERNET, f"aws:{region}", LocationClass.INTERNET)
    return TransferRoute(f"aws:{region}", INTERNET, LocationClass.INTERNET)


def _class_between(src: str, dst: str) -> str:
    if src == dst:
        return LocationClass.SAME_REGION
    src_continent, dst_continent = continent_for_region(src), continent_for_region(dst)
    if src_continent is not None and src_continent == dst_continent:
        return LocationClass.SAME_CONTINENT
    return LocationClass.OTHER_CONTINENT


def _amount(metrics: dict, metric: str, where: str) -> tuple[Decimal, str]:
    value = (metrics or {}).get(metric)
    if not isinstance(value, dict) or value.get("Amount") in (None, ""):
        raise CostExplorerError(f"{where}: {metric} has no Amount")
    try:
        amount = Decimal(str(value["Amount"]))
    except InvalidOperation:
        raise CostExplorerError(f"{where}: {metric} Amount {value['Amount']!r} is not a number") from None
    if not amount.is_finite():
        raise CostExplorerError(f"{where}: {metric} Amount {value['Amount']!r} is not a number")
    return amount, str(value.get("Unit") or "")


def _day(period: dict | None, where: str) -> date:
    try:
        return date.fromisoformat(str((period or {})["Start"])[:10])
    except (KeyError, ValueError):
        raise CostExplorerError(f"{where}: TimePeriod has no valid Start date") from None


def cost_pages_fetch(client, *, start: date, end: date) -> list[dict]:
    """Every page of ``get_cost_and_usage`` for the days [start, end)."""
    request = {
        "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
        "Granularity": "DAILY",
        "Metrics": [COST_METRIC, USAGE_METRIC],
        "GroupBy": [{"Type": "DIMENSION", "Key": "USAGE_TYPE"}],
    }
    pages = []
    token = None
    while len(pages) < PAGES_MAX:
        reply = client.get_cost_and_usage(**request, **({"NextPageToken": token} if token else {}))
        pages.append(reply)
        token = reply.get("NextPageToken")
        if not token:
            return pages
    raise CostExplorerError(f"Cost Explorer kept paginating past {PAGES_MAX} pages")


def cost_pages_parse(pages: list[dict]) -> tuple[dict[date, Decimal], dict[tuple[date, str], tuple[Decimal, int]]]:
    """Daily EC2 instance-usage totals (``is_instance_usage``), and per (day, data-transfer usage type) the $ and
    bytes, from the pages of one query."""
    totals: dict[date, Decimal] = {}
    transfers: dict[tuple[date, str], tuple[Decimal, int]] = {}
    for number, page in enumerate(pages, start=1):
        if not isinstance(page.get("ResultsByTime"), list):
            raise CostExplorerError(f"page {number}: no ResultsByTime list")
        for result in page["ResultsByTime"]:
            day = _day(result.get("TimePeriod"), f"page {number}")
            totals.setdefault(day, Decimal(0))
            for group in result.get("Groups") or []:
                keys = group.get("Keys") or []
                if not keys:
                    raise CostExplorerError(f"{day}: a group without its usage type key")
                usage_type = str(keys[0])
                where = f"{day} {usage_type}"
                usd, unit = _amount(group.get("Metrics"), COST_METRIC, where)
                if unit != "USD":
                    raise CostExplorerError(f"{where}: cost unit {unit!r} is not USD")
                if is_instance_usage(usage_type):
                    totals[day] += usd
                if not is_data_transfer(usage_type):
                    continue
                quantity, unit = _amount(group.get("Metrics"), USAGE_METRIC, where)
                if unit not in BYTES_PER_UNIT:
                    raise CostExplorerError(f"{where}: usage unit {unit!r} is not one of {sorted(BYTES_PER_UNIT)}")
                size = int(quantity * BYTES_PER_UNIT[unit])
                before_usd, before_bytes = transfers.get((day, usage_type), (Decimal(0), 0))
                transfers[(day, usage_type)] = (before_usd + usd, before_bytes + size)
    return totals, transfers


def cost_explorer_import(*, provider: Provider, start: date, end: date, client=None) -> CostImportReport:
    """Import the billed cost and data transfer of an AWS account for the days [start, end); idempotent."""
    if provider.kind != ProviderKind.AWS:
        raise CostExplorerError(f"{provider.name} is not an AWS account; Cost Explorer is AWS only.")
    if end <= start:
        raise CostExplorerError("The import period is empty: end must be after start.")
    if client is None:
        from fleet.inventory.aws import aws_client_config, session_for

        client = session_for(provider.credential_ref).client("ce", region_name=CE_REGION, config=aws_client_config())
    pages = cost_pages_fetch(client, start=start, end=end)
    totals, transfers = cost_pages_parse(pages)
    report = CostImportReport(provider=provider.name, start=start, end=end, pages=len(pages), days=len(totals))
    with transaction.atomic():
        for day, usd in sorted(totals.items()):
            BilledCost.objects.update_or_create(provider=provider, day=day, defaults={"usd": usd})
            report.billed_usd += usd
        for (day, usage_type), (usd, size) in sorted(transfers.items()):
            route = transfer_route(usage_type)
            EgressRecord.objects.update_or_create(
                cause=EgressCause.COST_EXPLORER,
                external_key=f"{provider.pk}:{day.isoformat()}:{usage_type}"[:200],
                defaults={
                    "occurred_at": datetime.combine(day, time(), tzinfo=UTC),
                    "source": route.source,
                    "destination": route.destination,
                    "source_provider_kind": ProviderKind.AWS,
                    "location_class": route.location_class,
                    "bytes": max(size, 0),
                    "usd": usd,
                    "planned": False,
                },
            )
            report.egress_records += 1
    return report
