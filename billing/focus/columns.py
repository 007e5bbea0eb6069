"""The FOCUS 1.0 columns Fleetdeck writes, their types and the values the specification allows.

Names, types and allowed values follow the FOCUS 1.0 specification (https://focus.finops.org): every column of
1.0 in its alphabetical order, then Fleetdeck's own ``x_`` columns. Types are the specification's data types:
``string``, ``decimal``, ``datetime`` (ISO 8601 in UTC) and ``json`` (a JSON object as text).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_UP, Decimal

FOCUS_VERSION = "1.0"
CURRENCY = "USD"
SIX_PLACES = Decimal("0.000001")

# (name, type) of every FOCUS 1.0 column.
FOCUS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("AvailabilityZone", "string"),
    ("BilledCost", "decimal"),
    ("BillingAccountId", "string"),
    ("BillingAccountName", "string"),
    ("BillingCurrency", "string"),
    ("BillingPeriodEnd", "datetime"),
    ("BillingPeriodStart", "datetime"),
    ("ChargeCategory", "string"),
    ("ChargeClass", "string"),
    ("ChargeDescription", "string"),
    ("ChargeFrequency", "string"),
    ("ChargePeriodEnd", "datetime"),
    ("ChargePeriodStart", "datetime"),
    ("CommitmentDiscountCategory", "string"),
    ("CommitmentDiscountId", "string"),
    ("CommitmentDiscountName", "string"),
    ("CommitmentDiscountStatus", "string"),
    ("CommitmentDiscountType", "string"),
    ("ConsumedQuantity", "decimal"),
    ("ConsumedUnit", "string"),
    ("ContractedCost", "decimal"),
    ("ContractedUnitPrice", "decimal"),
    ("EffectiveCost", "decimal"),
    ("InvoiceIssuerName", "string"),
    ("ListCost", "decimal"),
    ("ListUnitPrice", "decimal"),
    ("PricingCategory", "string"),
    ("PricingQuantity", "decimal"),
    ("PricingUnit", "string"),
    ("ProviderName", "string"),
    ("PublisherName", "string"),
    ("RegionId", "string"),
    ("RegionName", "string"),
    ("ResourceId", "string"),
    ("ResourceName", "string"),
    ("ResourceType", "string"),
    ("ServiceCategory", "string"),
    ("ServiceName", "string"),
    ("SkuId", "string"),
    ("SkuPriceId", "string"),
    ("SubAccountId", "string"),
    ("SubAccountName", "string"),
    ("Tags", "json"),
)

# Fleetdeck's own columns (FOCUS: custom columns start with "x_"): the ledger's figures FOCUS has no column for.
CUSTOM_COLUMNS: tuple[tuple[str, str], ...] = (
    ("x_FleetdeckNodeId", "string"),
    ("x_FleetdeckLifecycle", "string"),
    ("x_FleetdeckGpuHours", "decimal"),
    ("x_FleetdeckIdleGpuHours", "decimal"),
    ("x_FleetdeckIdleCost", "decimal"),
    ("x_FleetdeckBrokenGpuHours", "decimal"),
    ("x_FleetdeckBrokenCost", "decimal"),
    ("x_FleetdeckCoveredCost", "decimal"),
    ("x_FleetdeckEnergyKwh", "decimal"),
    ("x_FleetdeckCo2eKg", "decimal"),
    ("x_FleetdeckPriced", "string"),
)

EXPORT_COLUMNS: tuple[tuple[str, str], ...] = FOCUS_COLUMNS + CUSTOM_COLUMNS
EXPORT_HEADER: tuple[str, ...] = tuple(name for name, _ in EXPORT_COLUMNS)
COLUMN_TYPES: dict[str, str] = dict(EXPORT_COLUMNS)

# Allowed values (FOCUS 1.0). Nullable columns may also be empty.
CHARGE_CATEGORIES = ("Adjustment", "Credit", "Purchase", "Tax", "Usage")
CHARGE_CLASSES = ("Correction",)
CHARGE_FREQUENCIES = ("One-Time", "Recurring", "Usage-Based")
PRICING_CATEGORIES = ("Standard", "Dynamic", "Committed", "Other")
COMMITMENT_DISCOUNT_CATEGORIES = ("Spend", "Usage")
COMMITMENT_DISCOUNT_STATUSES = ("Used", "Unused")
SERVICE_CATEGORIES = (
    "AI and Machine Learning",
    "Analytics",
    "Business Applications",
    "Compute",
    "Databases",
    "Developer Tools",
    "Multicloud",
    "Identity",
    "Integration",
    "Internet of Things",
    "Management and Governance",
    "Media",
    "Migration",
    "Mobile",
    "Networking",
    "Security",
    "Storage",
    "Web",
    "Other",
)
ALLOWED_VALUES: dict[str, tuple[str, ...]] = {
    "ChargeCategory": CHARGE_CATEGORIES,
    "ChargeClass": CHARGE_CLASSES,
    "ChargeFrequency": CHARGE_FREQUENCIES,
    "PricingCategory": PRICING_CATEGORIES,
    "CommitmentDiscountCategory": COMMITMENT_DISCOUNT_CATEGORIES,
    "CommitmentDiscountStatus": COMMITMENT_DISCOUNT_STATUSES,
    "ServiceCategory": SERVICE_CATEGORIES,
}
# Columns that FOCUS 1.0 says are never null.
NOT_NULL = (
    "BilledCost",
    "BillingAccountId",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
)


def focus_datetime(moment: datetime) -> str:
    """A FOCUS date/time: ISO 8601 in UTC with a Z, to the second (``2026-03-01T00:00:00Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def focus_midnight(day: date) -> str:
    """The FOCUS date/time of the UTC midnight that opens ``day``."""
    return focus_datetime(datetime.combine(day, time.min, tzinfo=UTC))


def focus_decimal(value: Decimal | int | None) -> Decimal | None:
    """An amount or quantity as written: 6 decimals (half up), so a column of whole numbers still reads as
    decimals; None stays None (an empty cell)."""
    if value is None:
        return None
    return Decimal(value).quantize(SIX_PLACES, rounding=ROUND_HALF_UP)


def focus_row_problems(row: dict[str, str]) -> list[str]:
    """What is wrong with one row of FOCUS text (column → cell) by FOCUS 1.0's column rules: never-null columns
    that are empty, values outside a column's allowed list, date/times that are not ISO 8601 UTC. The official
    validator (focus-validator 1.0.0) checks most of these but not ChargeCategory's values; this checks all."""
    problems = []
    for name in NOT_NULL:
        if not row.get(name):
            problems.append(f"{name} is empty")
    for name, allowed in ALLOWED_VALUES.items():
        value = row.get(name) or ""
        if value and value not in allowed:
            problems.append(f"{name} {value!r} is not one of {', '.join(allowed)}")
    for name, kind in FOCUS_COLUMNS:
        value = row.get(name) or ""
        if kind == "datetime" and value and not _is_utc(value):
            problems.append(f"{name} {value!r} is not an ISO 8601 UTC date/time")
    return problems


def _is_utc(value: str) -> bool:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return moment.utcoffset() is not None and moment.utcoffset().total_seconds() == 0
