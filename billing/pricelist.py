"""Refresh AWS on-demand prices from the AWS Price List API (``pricing.get_products``).

The Price List API has no spot prices and no GPU model names: the GPU model comes from fleet.catalog (or an
earlier price row of the same type), and the spot figure of the row being superseded is carried over, with a
note saying so. Everything is fetched and parsed before anything is written, so a refused call leaves the
catalogue as it was.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from django.db import transaction

from billing.choices import PriceSource
from billing.models import InstancePrice
from fleet.catalog import INSTANCE_TYPES
from fleet.choices import ProviderKind
from fleet.inventory.aws import aws_client_config

logger = logging.getLogger(__name__)
# The Price List API is served from a few regions only; us-east-1 holds every region's prices.
PRICING_API_REGION = "us-east-1"
PRICE_LIST_PAGE_SIZE = 100
MAX_PAGES_PER_TYPE = 50
STATIC_FILTERS = (
    ("operatingSystem", "Linux"),
    ("tenancy", "Shared"),
    ("preInstalledSw", "NA"),
    ("capacitystatus", "Used"),
)


class PriceListError(Exception):
    """The Price List API refused or failed; nothing was written."""


class PriceListUnavailable(PriceListError):
    """The Price List API could not be reached (a network or endpoint failure, worth a later retry)."""


@dataclass
class PriceListReport:
    """What one refresh did, and which Price List items it skipped and why."""

    region: str
    instance_types: list[str]
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "region": self.region,
            "instance_types": self.instance_types,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
        }


@dataclass(frozen=True)
class ListedPrice:
    """One on-demand price read from a Price List item."""

    instance_type: str
    usd_per_h: Decimal
    effective_from: date
    gpu_count: int | None
    sku: str


def pricing_client():
    """A boto3 Price List client (AWS_ENDPOINT_URL, honoured by boto3, points it at a local endpoint)."""
    return boto3.client("pricing", region_name=PRICING_API_REGION, config=aws_client_config())


def price_list_filters(*, region: str, instance_type: str) -> list[dict]:
    """The get_products filters for one instance type's Linux, shared-tenancy, on-demand price in a region."""
    pairs = (("instanceType", instance_type), ("regionCode", region), *STATIC_FILTERS)
    return [{"Type": "TERM_MATCH", "Field": name, "Value": value} for name, value in pairs]


def price_list_item_parse(raw: str, *, instance_type: str) -> tuple[ListedPrice | None, str]:
    """One PriceList JSON string as a price, or (None, why it was skipped)."""
    try:
        item = json.loads(raw)
    except (TypeError, ValueError) as exc:
        return None, f"malformed PriceList entry ({str(exc)[:80]})"
    if not isinstance(item, dict):
        return None, "malformed PriceList entry (not an object)"
    product = item.get("product") or {}
    attributes = product.get("attributes") or {}
    sku = str(product.get("sku") or "?")
    family = product.get("productFamily") or "?"
    if family != "Compute Instance":
        return None, f"sku {sku}: not a compute instance (productFamily {family!r})"
    listed_type = attributes.get("instanceType")
    if listed_type != instance_type:
        return None, f"sku {sku}: instance type {listed_type!r}, asked for {instance_type!r}"
    terms = ((item.get("terms") or {}).get("OnDemand") or {}).values()
    for term in terms:
        for dimension in (term.get("priceDimensions") or {}).values():
            usd = (dimension.get("pricePerUnit") or {}).get("USD")
            if usd is None:
                continue
            try:
                price = Decimal(usd)
                effective = date.fromisoformat(str(term.get("effectiveDate", ""))[:10])
            except (InvalidOperation, ValueError):
                return None, f"sku {sku}: unreadable price {usd!r} or effectiveDate {term.get('effectiveDate')!r}"
            if not price.is_finite() or price < 0:
                return None, f"sku {sku}: unusable price {usd!r}"
            if price == 0:
                return None, f"sku {sku}: a $0 price is not an on-demand instance price"
            gpus = attributes.get("gpu")
            gpu_count = int(gpus) if str(gpus or "").isdigit() else None
            return ListedPrice(instance_type, price.quantize(Decimal("0.000001")), effective, gpu_count, sku), ""
    return None, f"sku {sku}: no on-demand USD price"


def _fetch(client, *, region: str, instance_type: str, report: PriceListReport) -> list[ListedPrice]:
    """Every page of get_products for one type; ClientError and transport errors become PriceListError."""
    prices, token = [], None
    for _ in range(MAX_PAGES_PER_TYPE):
        kwargs = {
            "ServiceCode": "AmazonEC2",
            "Filters": price_list_filters(region=region, instance_type=instance_type),
            "FormatVersion": "aws_v1",
            "MaxResults": PRICE_LIST_PAGE_SIZE,
        }
        if token:
            kwargs["NextToken"] = token
        try:
            page = client.get_products(**kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise PriceListError(
                f"AWS Price List API refused get_products for {instance_type} in {region}: "
                f"{error.get('Code', '?')}: {error.get('Message', '')}".rstrip(": ")
            ) from exc
        except BotoCoreError as exc:
            raise PriceListUnavailable(f"AWS Price List API unreachable: {exc}") from exc
        for raw in page.get("PriceList") or []:
            price, why = price_list_item_parse(raw, instance_type=instance_type)
            if price is None:
                report.skipped.append(f"{instance_type}: {why}")
            else:
                prices.append(price)
        token = page.get("NextToken")
        if not token:
            return prices
    report.skipped.append(f"{instance_type}: stopped after {MAX_PAGES_PER_TYPE} pages")
    return prices


def _default_instance_types(region: str) -> list[str]:
    """The AWS GPU types Fleetdeck knows, plus any already priced in the region."""
    known = {name for name, it in INSTANCE_TYPES.items() if it.provider == ProviderKind.AWS}
    priced = InstancePrice.objects.filter(provider_kind=ProviderKind.AWS, region=region).values_list(
        "instance_type", flat=True
    )
    return sorted(known | set(priced))


def price_list_refresh(*, region: str, instance_types: list[str] | None = None, client=None) -> PriceListReport:
    """Fetch the on-demand prices of ``instance_types`` in ``region`` and write them as AWS_PRICE_LIST rows."""
    types = sorted(set(instance_types)) if instance_types else _default_instance_types(region)
    report = PriceListReport(region=region, instance_types=types)
    client = client or pricing_client()
    fetched: dict[tuple[str, date], ListedPrice] = {}
    for instance_type in types:
        for price in _fetch(client, region=region, instance_type=instance_type, report=report):
            key = (price.instance_type, price.effective_from)
            if key in fetched and fetched[key].usd_per_h != price.usd_per_h:
                report.skipped.append(
                    f"{instance_type}: sku {price.sku} disagrees with sku {fetched[key].sku} "
                    f"({price.usd_per_h} vs {fetched[key].usd_per_h}); kept the first"
                )
                continue
            fetched.setdefault(key, price)
    with transaction.atomic():
        for price in fetched.values():
            _write(price, region=region, report=report)
    logger.info("AWS price list refresh: %s", {k: v for k, v in report.as_dict().items() if k != "skipped"})
    return report


def _write(price: ListedPrice, *, region: str, report: PriceListReport) -> None:
    earlier = (
        InstancePrice.objects.filter(
            provider_kind=ProviderKind.AWS,
            region=region,
            instance_type=price.instance_type,
            effective_from__lte=price.effective_from,
        )
        .exclude(source=PriceSource.OVERRIDE)
        .order_by("-effective_from", "-pk")
        .first()
    )
    known = INSTANCE_TYPES.get(price.instance_type)
    if known is not None and known.provider == ProviderKind.AWS:
        gpu_model, gpu_count = known.gpu, known.gpu_count
    elif earlier is not None:
        gpu_model, gpu_count = earlier.gpu_model, earlier.gpu_count
    else:
        report.skipped.append(f"{price.instance_type}: GPU model unknown (not in fleet.catalog, never priced)")
        return
    if price.gpu_count is not None and price.gpu_count != gpu_count:
        report.skipped.append(
            f"{price.instance_type}: the Price List says {price.gpu_count} GPUs, the catalogue {gpu_count}"
        )
        return
    spot = earlier.spot_usd_per_h if earlier is not None else None
    spot_note = f"; spot carried over from the {earlier.source} row of {earlier.effective_from}" if spot else ""
    defaults = {
        "gpu_model": gpu_model,
        "gpu_count": gpu_count,
        "on_demand_usd_per_h": price.usd_per_h,
        "spot_usd_per_h": spot,
        "note": f"AWS Price List API sku {price.sku}{spot_note}"[:300],
    }
    row = InstancePrice.objects.filter(
        provider_kind=ProviderKind.AWS,
        region=region,
        instance_type=price.instance_type,
        effective_from=price.effective_from,
        source=PriceSource.AWS_PRICE_LIST,
    ).first()
    if row is None:
        InstancePrice.objects.create(
            provider_kind=ProviderKind.AWS,
            region=region,
            instance_type=price.instance_type,
            effective_from=price.effective_from,
            source=PriceSource.AWS_PRICE_LIST,
            **defaults,
        )
        report.created += 1
    elif row.on_demand_usd_per_h != price.usd_per_h or row.gpu_model != gpu_model or row.gpu_count != gpu_count:
        for name, value in defaults.items():
            setattr(row, name, value)
        row.save(update_fields=list(defaults))
        report.updated += 1
    else:
        report.unchanged += 1
