"""What a cloud billed, from a FinOps FOCUS 1.0 billing export: ``BilledCost`` rows (source "focus") per provider
account and UTC day, to reconcile against the ledger.

Any FOCUS 1.0 CSV works, plain or gzip: AWS Data Exports' "FOCUS 1.0 with AWS columns", GCP's FOCUS BigQuery
view exported as CSV, Fleetdeck's own export. A row counts when it is what the ledger estimates, **compute
instance usage**:

- ``ChargeCategory`` "Usage" (purchases, taxes, credits and adjustments have no counterpart in the ledger; a
  commitment's purchase is amortised into the ``EffectiveCost`` of the usage it covers) and ``ServiceCategory``
  "Compute";
- an instance or VM charge: **AWS** (``ProviderName`` "AWS" / "Amazon Web Services") ``ServiceName`` "Amazon
  Elastic Compute Cloud", and where the export has AWS's ``x_UsageType`` column, an EC2 instance-hour usage type
  (``BoxUsage``, ``SpotUsage``, ``DedicatedUsage``, ``HostUsage``: the same rule as the Cost Explorer import,
  ``billing.costexplorer.INSTANCE_USAGE_MARKERS``; EBS is "Storage" and data transfer "Networking" anyway);
  **GCP** (``ProviderName`` "Google Cloud") ``ServiceName`` "Compute Engine" and a VM's SKU, whose description
  (``ChargeDescription``) reads "… Core|Ram|GPU … running in …" ("A3 Instance Core running in Americas",
  "Nvidia H100 80GB GPU running in Americas"), not persistent disks, images, IPs or egress;
- or an unused commitment of either (``CommitmentDiscountStatus`` "Unused"), which the ledger counts as spend.

The amount is **EffectiveCost**: the ledger's figures are effective cost, commitments included (a covered hour at
its committed rate, unused commitments as their own spend), which is what ``EffectiveCost`` is; ``BilledCost`` of a
covered hour is 0 when the commitment was paid upfront. The day is ``ChargePeriodStart``'s UTC day (a counted row
must not span two days: export daily or hourly granularity).

Rows are matched to a Fleetdeck ``Provider`` by ``ProviderName`` → kind and ``SubAccountId`` (AWS linked account,
GCP project), else ``BillingAccountId`` → ``Provider.account_id``. Every row is checked first; any problem
(missing columns, a currency other than USD, a bad date or amount, an account Fleetdeck does not know) fails the
import with every problem listed by line, and nothing is written. Then one transaction writes a ``BilledCost`` per
provider and day, replacing an earlier import of the day (from Cost Explorer too): every day from a provider's
first to its last counted day, $0 on a day in between with no counted row.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.db import transaction

from billing.choices import BilledCostSource
from billing.costexplorer import INSTANCE_USAGE_MARKERS
from billing.focus.columns import CHARGE_CATEGORIES, CURRENCY
from billing.models import BilledCost
from core.errors import LineErrors
from fleet.choices import ProviderKind
from fleet.models import Provider

IMPORT_MAX_BYTES = 256 * 1024 * 1024  # of CSV text, after decompression (a gzip bomb stops here too)
DAY_USD_MAX = Decimal(10) ** 10  # BilledCost holds 16 digits, 6 of them decimals
REQUIRED_COLUMNS = (
    "BillingAccountId",
    "BillingCurrency",
    "ChargeCategory",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "EffectiveCost",
    "ProviderName",
    "ServiceCategory",
    "ServiceName",
)
PROVIDER_KINDS = {
    "aws": ProviderKind.AWS,
    "amazon web services": ProviderKind.AWS,
    "google cloud": ProviderKind.GCP,
    "google cloud platform": ProviderKind.GCP,
    "gcp": ProviderKind.GCP,
}
AWS_EC2 = "amazon elastic compute cloud"
GCP_COMPUTE = "compute engine"
GCP_VM_SKU_RE = re.compile(r"\b(core|ram|gpu)\b.*\brunning in\b", re.IGNORECASE)
KIND_NAMES = {ProviderKind.AWS: "AWS", ProviderKind.GCP: "GCP"}


class FocusImportError(LineErrors):
    """A FOCUS file that cannot be imported; ``errors`` says why, one line per problem (``line 4: …``)."""


@dataclass
class ProviderDays:
    """What one import wrote for one provider account."""

    provider_id: int
    provider_name: str
    first_day: date
    last_day: date
    days: int
    usd: Decimal
    rows: int


@dataclass
class FocusImportReport:
    """What one ``focus_import`` read and wrote."""

    rows: int = 0
    counted: int = 0
    skipped: int = 0  # not compute instance usage
    other_providers: int = 0  # rows of providers Fleetdeck has no kind for (Azure, Oracle, …)
    skipped_unknown_accounts: list[str] = field(default_factory=list)
    providers: list[ProviderDays] = field(default_factory=list)

    @property
    def days_written(self) -> int:
        return sum(p.days for p in self.providers)

    @property
    def usd(self) -> Decimal:
        return sum((p.usd for p in self.providers), Decimal(0))


class _Capped(io.RawIOBase):
    """A binary stream that refuses to give more than ``limit`` bytes."""

    def __init__(self, stream, limit: int) -> None:
        self._stream, self._left, self.limit = stream, limit, limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._stream.read(min(len(buffer), self._left + 1))
        if len(data) > self._left:
            raise FocusImportError([f"The file is larger than {self.limit:,} bytes of CSV; split it (by month)."])
        self._left -= len(data)
        buffer[: len(data)] = data
        return len(data)


def _binary(file):
    """``file`` (a seekable binary or text file object) as a binary stream, decompressed if it is gzip."""
    if isinstance(file, io.TextIOBase):
        file = io.BytesIO(file.read().encode())
    file.seek(0)
    head = file.read(2)
    file.seek(0)
    return gzip.GzipFile(fileobj=file, mode="rb") if head == b"\x1f\x8b" else file


def _moment(value: str) -> datetime:
    """A FOCUS date/time as an aware UTC datetime: ISO 8601 with Z or an offset (naive: UTC), and BigQuery's
    CSV form ``2026-03-01 00:00:00 UTC``."""
    text = value.strip()
    if text.endswith(" UTC"):
        text = text[:-4]
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _amount(value: str) -> Decimal:
    amount = Decimal(value.strip())
    if not amount.is_finite() or abs(amount) >= DAY_USD_MAX:
        raise InvalidOperation
    return amount


def _is_instance_usage(kind: str, cell) -> bool:
    """Is the row (``cell(name)`` → its text) compute instance usage of ``kind``, or an unused commitment?"""
    if cell("ChargeCategory") != "Usage" or cell("ServiceCategory") != "Compute":
        return False
    if cell("CommitmentDiscountStatus") == "Unused":
        return True
    service = cell("ServiceName").lower()
    if kind == ProviderKind.AWS:
        usage_type = cell("x_UsageType")
        if service != AWS_EC2:
            return False
        return not usage_type or any(marker in usage_type for marker in INSTANCE_USAGE_MARKERS)
    return service == GCP_COMPUTE and bool(GCP_VM_SKU_RE.search(cell("ChargeDescription")))


@dataclass
class _Parsed:
    errors: list[str] = field(default_factory=list)
    totals: dict[tuple[int, date], Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    rows_of: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    unknown: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (kind, sub, billing) → first line


def _header_check(header: list[str]) -> dict[str, int]:
    names = [name.strip() for name in header]
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        raise FocusImportError(
            [f"line 1: the header lacks the FOCUS column(s) {', '.join(missing)} (is this a FOCUS 1.0 export?)"]
        )
    return {name: i for i, name in reversed(list(enumerate(names)))}


def _parse(reader, report: FocusImportReport, providers: dict[tuple[str, str], Provider]) -> _Parsed:
    parsed = _Parsed()
    errors = parsed.errors
    try:
        header = next(reader)
    except StopIteration:
        raise FocusImportError(["The file is empty: no FOCUS header."]) from None
    index = _header_check(header)
    width = len(header)
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        report.rows += 1
        if len(row) != width:
            errors.append(f"line {line}: {len(row)} cells where the header has {width}")
            continue

        def cell(name: str, row=row) -> str:
            i = index.get(name)
            return row[i].strip() if i is not None else ""

        category = cell("ChargeCategory")
        if category not in CHARGE_CATEGORIES:
            errors.append(f"line {line}: ChargeCategory {category!r} is not one of {', '.join(CHARGE_CATEGORIES)}")
            continue
        kind = PROVIDER_KINDS.get(cell("ProviderName").lower())
        if kind is None:
            report.other_providers += 1
            continue
        if not _is_instance_usage(kind, cell):
            report.skipped += 1
            continue
        problems = []
        currency = cell("BillingCurrency")
        if currency != CURRENCY:
            problems.append(f"BillingCurrency is {currency!r}: Fleetdeck's ledger is in {CURRENCY}")
        try:
            start, end = _moment(cell("ChargePeriodStart")), _moment(cell("ChargePeriodEnd"))
        except ValueError:
            problems.append(
                f"ChargePeriodStart/End {cell('ChargePeriodStart')!r}/{cell('ChargePeriodEnd')!r} are not "
                "ISO 8601 date/times"
            )
        else:
            if end <= start:
                problems.append("ChargePeriodEnd is not after ChargePeriodStart")
            elif (end - timedelta(microseconds=1)).date() != start.date():
                problems.append("the charge period spans more than one UTC day (export daily or hourly data)")
        try:
            amount = _amount(cell("EffectiveCost"))
        except (InvalidOperation, ValueError):
            problems.append(f"EffectiveCost {cell('EffectiveCost')!r} is not an amount")
        if problems:
            errors.append(f"line {line}: " + "; ".join(problems))
            continue
        sub, billing = cell("SubAccountId"), cell("BillingAccountId")
        provider = providers.get((kind, sub)) or providers.get((kind, billing))
        if provider is None:
            parsed.unknown.setdefault((kind, sub, billing), line)
            continue
        report.counted += 1
        parsed.totals[(provider.pk, start.date())] += amount
        parsed.rows_of[provider.pk] += 1
    return parsed


def _unknown_accounts(unknown: dict[tuple[str, str, str], int]) -> list[str]:
    described = []
    for (kind, sub, billing), line in sorted(unknown.items(), key=lambda item: item[1]):
        account = sub or billing
        also = f" (billing account {billing})" if sub and billing and billing != sub else ""
        described.append(f"{KIND_NAMES[kind]} account {account}{also}, first on line {line}")
    return described


def focus_import(*, file, skip_unknown_accounts: bool = False, max_bytes: int = IMPORT_MAX_BYTES) -> FocusImportReport:
    """Import what AWS and GCP billed per account and UTC day from a FOCUS 1.0 CSV (a path, or a seekable file
    object; gzip or not), as the module docstring says; returns what was read and written.

    Raises ``FocusImportError`` listing every problem by line, with nothing written. Rows of accounts no Fleetdeck
    provider has are a problem too, unless ``skip_unknown_accounts`` (then the report names them).
    """
    if isinstance(file, str | os.PathLike):
        with open(file, "rb") as opened:
            return focus_import(file=opened, skip_unknown_accounts=skip_unknown_accounts, max_bytes=max_bytes)
    report = FocusImportReport()
    providers = {
        (p.kind, p.account_id): p
        for p in Provider.objects.filter(kind__in=(ProviderKind.AWS, ProviderKind.GCP)).exclude(account_id="")
    }
    binary = _Capped(_binary(file), max_bytes)
    text = io.TextIOWrapper(io.BufferedReader(binary), encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    try:
        parsed = _parse(reader, report, providers)
    except UnicodeDecodeError:
        raise FocusImportError([f"near line {reader.line_num + 1}: the file is not UTF-8 text"]) from None
    except (gzip.BadGzipFile, EOFError, zlib.error):
        raise FocusImportError(["The file is not valid gzip (or it is cut short)."]) from None
    except csv.Error as exc:
        raise FocusImportError([f"line {reader.line_num}: {exc}"]) from None
    errors = list(parsed.errors)
    unknown = _unknown_accounts(parsed.unknown)
    if unknown and skip_unknown_accounts:
        report.skipped_unknown_accounts = unknown
    elif unknown:
        errors += [f"No Fleetdeck provider for {account}" for account in unknown]
    for (provider_id, day), usd in sorted(parsed.totals.items()):
        if abs(usd) >= DAY_USD_MAX:
            errors.append(f"The total of provider {provider_id} on {day} is too large: {usd}")
    if errors:
        raise FocusImportError(errors)
    if not parsed.totals:
        raise FocusImportError(["The file has no compute instance usage of a known account: nothing to import."])
    report.providers = _write(parsed, {p.pk: p for p in providers.values()})
    return report


def _write(parsed: _Parsed, by_id: dict[int, Provider]) -> list[ProviderDays]:
    """Write a BilledCost per provider and day, first to last counted day ($0 between), in one transaction."""
    days_of: dict[int, list[date]] = defaultdict(list)
    for provider_id, day in parsed.totals:
        days_of[provider_id].append(day)
    rows, written = [], []
    for provider_id, days in sorted(days_of.items()):
        first, last = min(days), max(days)
        total = Decimal(0)
        day = first
        while day <= last:
            usd = parsed.totals.get((provider_id, day), Decimal(0))
            total += usd
            rows.append(BilledCost(provider_id=provider_id, day=day, usd=usd, source=BilledCostSource.FOCUS))
            day += timedelta(days=1)
        provider = by_id[provider_id]
        written.append(
            ProviderDays(
                provider_id=provider_id,
                provider_name=provider.name,
                first_day=first,
                last_day=last,
                days=(last - first).days + 1,
                usd=total,
                rows=parsed.rows_of[provider_id],
            )
        )
    with transaction.atomic():
        BilledCost.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=("provider", "day"),
            update_fields=("usd", "source", "fetched_at"),
            batch_size=1000,
        )
    return written
