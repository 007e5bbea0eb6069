"""Load the shipped price catalogue (billing/data/*.csv) into the database.

Loading is idempotent: a row already there with the same key and figures is left alone, a changed figure for
the same key and day updates the catalogue row, and admin overrides (source ``override``) are never touched.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.db import transaction

from billing.choices import LocationClass, PriceSource
from billing.data.build_catalogue import COLUMNS as PRICE_COLUMNS  # the loader reads what the build writes
from billing.models import EgressRate, InstancePrice
from core.errors import errors_text
from fleet.catalog import GPU_SPECS
from fleet.choices import ProviderKind

DATA_DIR = Path(__file__).resolve().parent / "data"
PRICES_FILE = "instance_prices.csv"
EGRESS_FILE = "egress_rates.csv"
EGRESS_COLUMNS = ("provider_kind", "location_class", "tier_start_gb", "usd_per_gb", "effective_from", "note")
CLOUD_KINDS = (ProviderKind.AWS, ProviderKind.GCP)
MAX_ERRORS_SHOWN = 20


class CatalogueError(ValueError):
    """A catalogue file is unreadable; the message names the file and line of every bad row."""


@dataclass
class LoadReport:
    """What one catalogue load did."""

    prices_created: int = 0
    prices_updated: int = 0
    prices_unchanged: int = 0
    egress_created: int = 0
    egress_updated: int = 0
    egress_unchanged: int = 0
    files: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "prices_created": self.prices_created,
            "prices_updated": self.prices_updated,
            "prices_unchanged": self.prices_unchanged,
            "egress_created": self.egress_created,
            "egress_updated": self.egress_updated,
            "egress_unchanged": self.egress_unchanged,
        }


class _RowReader:
    """Parses the cells of one CSV line, collecting errors that name the file, line and column."""

    def __init__(self, path: Path, line: int, record: dict[str, str], errors: list[str]):
        self.where = f"{path.name}:{line}"
        self.record = record
        self.errors = errors
        self.ok = True

    def fail(self, column: str, message: str) -> None:
        self.errors.append(f"{self.where}: {column}: {message}")
        self.ok = False

    def text(self, column: str) -> str:
        return (self.record.get(column) or "").strip()

    def choice(self, column: str, allowed, what: str) -> str:
        value = self.text(column)
        if value not in allowed:
            self.fail(column, f"unknown {what} {value!r} (expected one of {', '.join(allowed)})")
        return value

    def money(self, column: str, *, required: bool) -> Decimal | None:
        value = self.text(column)
        if not value:
            if required:
                self.fail(column, "a number is required")
            return None
        try:
            number = Decimal(value)
        except InvalidOperation:
            self.fail(column, f"not a number: {value!r}")
            return None
        if not number.is_finite() or number < 0:
            self.fail(column, f"must be a non-negative number, not {value!r}")
            return None
        if number != number.quantize(Decimal("0.000001")):
            self.fail(column, f"at most 6 decimal places: {value!r}")
            return None
        return number

    def integer(self, column: str, *, minimum: int) -> int | None:
        value = self.text(column)
        try:
            number = int(value)
        except ValueError:
            self.fail(column, f"not a whole number: {value!r}")
            return None
        if number < minimum:
            self.fail(column, f"must be at least {minimum}, not {number}")
            return None
        return number

    def day(self, column: str) -> date | None:
        value = self.text(column)
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.fail(column, f"not a YYYY-MM-DD date: {value!r}")
            return None


def _records(path: Path, columns: tuple[str, ...], errors: list[str]):
    """(line number, record) for each data line; a wrong header is an error naming the file."""
    if not path.is_file():
        raise CatalogueError(f"{path}: file not found")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != columns:
            raise CatalogueError(f"{path.name}:1: expected the columns {', '.join(columns)}")
        for record in reader:
            if None in record:
                errors.append(f"{path.name}:{reader.line_num}: more cells than columns")
                continue
            yield reader.line_num, record


def _parse_prices(path: Path, errors: list[str]) -> list[InstancePrice]:
    rows, seen = [], {}
    for line, record in _records(path, PRICE_COLUMNS, errors):
        r = _RowReader(path, line, record, errors)
        kind = r.choice("provider_kind", CLOUD_KINDS, "cloud provider kind")
        region, instance_type = r.text("region"), r.text("instance_type")
        for column, value in (("region", region), ("instance_type", instance_type)):
            if not value:
                r.fail(column, "required")
        gpu_model = r.choice("gpu_model", tuple(GPU_SPECS), "GPU model (catalogue key)")
        row = InstancePrice(
            provider_kind=kind,
            region=region,
            instance_type=instance_type,
            gpu_model=gpu_model,
            gpu_count=r.integer("gpu_count", minimum=1),
            on_demand_usd_per_h=r.money("on_demand_usd_per_h", required=False),
            spot_usd_per_h=r.money("spot_usd_per_h", required=False),
            effective_from=r.day("effective_from"),
            source=PriceSource.CATALOGUE,
            note=r.text("note")[:300],
        )
        if r.ok and row.on_demand_usd_per_h is None and row.spot_usd_per_h is None:
            r.fail("on_demand_usd_per_h", "give an on-demand or a spot price (or both)")
        key = (kind, region, instance_type, row.effective_from)
        if r.ok and key in seen:
            r.fail("effective_from", f"the same instance type and day as line {seen[key]}")
        if r.ok:
            seen[key] = line
            rows.append(row)
    return rows


def _parse_egress(path: Path, errors: list[str]) -> list[EgressRate]:
    rows, seen = [], {}
    for line, record in _records(path, EGRESS_COLUMNS, errors):
        r = _RowReader(path, line, record, errors)
        row = EgressRate(
            provider_kind=r.choice("provider_kind", tuple(ProviderKind.values), "provider kind"),
            location_class=r.choice("location_class", tuple(LocationClass.values), "location class"),
            tier_start_gb=r.integer("tier_start_gb", minimum=0),
            usd_per_gb=r.money("usd_per_gb", required=True),
            effective_from=r.day("effective_from"),
            note=r.text("note")[:300],
        )
        key = (row.provider_kind, row.location_class, row.tier_start_gb, row.effective_from)
        if r.ok and key in seen:
            r.fail("tier_start_gb", f"the same tier and day as line {seen[key]}")
        if r.ok:
            seen[key] = line
            rows.append(row)
    return rows


PRICE_FIGURES = ("gpu_model", "gpu_count", "on_demand_usd_per_h", "spot_usd_per_h", "note")
EGRESS_FIGURES = ("usd_per_gb", "note")


def _upsert(model, rows, key_fields, figures, existing_qs) -> tuple[int, int, int]:
    """Create missing rows, update changed figures; (created, updated, unchanged)."""
    existing = {tuple(getattr(o, f) for f in key_fields): o for o in existing_qs}
    create, update, unchanged = [], [], 0
    for row in rows:
        current = existing.get(tuple(getattr(row, f) for f in key_fields))
        if current is None:
            create.append(row)
        elif any(getattr(current, f) != getattr(row, f) for f in figures):
            for f in figures:
                setattr(current, f, getattr(row, f))
            update.append(current)
        else:
            unchanged += 1
    model.objects.bulk_create(create)
    model.objects.bulk_update(update, figures)
    return len(create), len(update), unchanged


def catalogue_load(*, path: Path | str | None = None) -> LoadReport:
    """Load instance_prices.csv and egress_rates.csv from ``path`` (default: the shipped billing/data).

    Every row is validated before anything is written; a CatalogueError lists the bad rows by file and line.
    """
    folder = Path(path) if path is not None else DATA_DIR
    errors: list[str] = []
    prices = _parse_prices(folder / PRICES_FILE, errors)
    egress = _parse_egress(folder / EGRESS_FILE, errors)
    if errors:
        raise CatalogueError("the price catalogue has bad rows:\n" + errors_text(errors, limit=MAX_ERRORS_SHOWN))
    report = LoadReport(files=[str(folder / PRICES_FILE), str(folder / EGRESS_FILE)])
    with transaction.atomic():
        report.prices_created, report.prices_updated, report.prices_unchanged = _upsert(
            InstancePrice,
            prices,
            ("provider_kind", "region", "instance_type", "effective_from"),
            PRICE_FIGURES,
            InstancePrice.objects.select_for_update().filter(source=PriceSource.CATALOGUE),
        )
        report.egress_created, report.egress_updated, report.egress_unchanged = _upsert(
            EgressRate,
            egress,
            ("provider_kind", "location_class", "tier_start_gb", "effective_from"),
            EGRESS_FIGURES,
            EgressRate.objects.select_for_update().all(),
        )
    return report
