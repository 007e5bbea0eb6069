"""Grid carbon intensity: load the shipped dataset and cloud PUEs, import hourly values per site, read what holds.

What an hour of a site's energy emits is looked up in this order (the ledger's SQL in ``billing.ledger`` does the
same; ``site_intensity_list`` shows it per site): the site's imported hourly value for that UTC hour
(``GridIntensityHour``), else the operator's ``Site.carbon_g_per_kwh``, else, for a cloud site, the shipped value
of its provider kind and region (``GridIntensity``). Otherwise the hour has no carbon figure (``co2e_kg`` empty).

- ``carbon_data_load`` loads billing/data/grid_intensity.csv and provider_pue.csv (idempotent; ``load_prices``
  calls it). Provenance: billing/data/README.md.
- ``grid_intensity_import`` reads a CSV of ``site,hour,g_per_kwh`` rows; every row is checked before anything is
  written, so a file with any bad row imports nothing. Re-importing a site's hour replaces its value.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from billing.choices import IntensitySource
from billing.models import GridIntensity, GridIntensityHour, ProviderPue
from core.errors import LineErrors, errors_text
from fleet.choices import ProviderKind
from fleet.models import Site
from fleet.models.inventory import CARBON_G_PER_KWH_MAX

DATA_DIR = Path(__file__).resolve().parent / "data"
GRID_FILE = "grid_intensity.csv"
PUE_FILE = "provider_pue.csv"
GRID_COLUMNS = ("provider_kind", "region", "g_per_kwh", "source")
PUE_COLUMNS = ("provider_kind", "pue", "source")
CLOUD_KINDS = (ProviderKind.AWS, ProviderKind.GCP)
IMPORT_COLUMNS = ("site", "hour", "g_per_kwh")
IMPORT_MAX_BYTES = 10 * 1024 * 1024  # a year of hourly values for 20 sites is about 7 MB
IMPORT_MAX_ROWS = 200_000
IMPORT_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
IMPORT_MAX_AHEAD = timedelta(days=7)  # forecasts, not typos in the year
MAX_ERRORS_SHOWN = 50
LINES_NAMED = 5  # of an unknown site's lines
TWO_PLACES = Decimal("0.01")
G_MAX = Decimal(CARBON_G_PER_KWH_MAX)


class CarbonDataError(ValueError):
    """A shipped carbon file is unreadable; the message names the file and line of every bad row."""


class IntensityImportError(LineErrors):
    """A file that cannot be imported; ``errors`` says why, one line per problem (``line 4: …``)."""


# --- the shipped dataset -----------------------------------------------------------------------------------
@dataclass
class CarbonLoadReport:
    """What one load of the shipped carbon files did."""

    grid_created: int = 0
    grid_updated: int = 0
    grid_unchanged: int = 0
    pue_created: int = 0
    pue_updated: int = 0
    pue_unchanged: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _file_records(path: Path, columns: tuple[str, ...], errors: list[str]):
    """(line, record) for each data line; a wrong header or a missing file is a CarbonDataError."""
    if not path.is_file():
        raise CarbonDataError(f"{path}: file not found")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != columns:
            raise CarbonDataError(f"{path.name}:1: expected the columns {', '.join(columns)}")
        for record in reader:
            if None in record or None in record.values():
                errors.append(f"{path.name}:{reader.line_num}: expected {len(columns)} cells")
                continue
            yield reader.line_num, {key: value.strip() for key, value in record.items()}


def _decimal(text: str, *, places: Decimal, low: Decimal, high: Decimal) -> Decimal:
    """``text`` as a number in [low, high] with at most ``places`` decimals; ValueError says why not."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a number: {text!r}") from None
    if not value.is_finite() or not low <= value <= high:
        raise ValueError(f"must be a number from {low} to {high}, not {text!r}")
    if value != value.quantize(places):
        raise ValueError(f"at most {-places.as_tuple().exponent} decimal places: {text!r}")
    return value


def _shipped_parse(folder: Path, errors: list[str]) -> tuple[list[GridIntensity], list[ProviderPue]]:
    grid, pues, seen = [], [], {}
    for name, columns, model in ((GRID_FILE, GRID_COLUMNS, GridIntensity), (PUE_FILE, PUE_COLUMNS, ProviderPue)):
        for line, record in _file_records(folder / name, columns, errors):
            where = f"{name}:{line}"
            kind = record["provider_kind"]
            key = (name, kind, record.get("region"))
            problems = []
            if kind not in CLOUD_KINDS:
                problems.append(f"provider_kind: {kind!r} is not a cloud (aws, gcp)")
            if not record["source"]:
                problems.append("source: required")
            if model is GridIntensity and not record["region"]:
                problems.append("region: required")
            if key in seen:
                problems.append(f"the same {'region' if model is GridIntensity else 'provider'} as line {seen[key]}")
            try:
                if model is GridIntensity:
                    number = _decimal(record["g_per_kwh"], places=TWO_PLACES, low=Decimal(0), high=G_MAX)
                else:
                    number = _decimal(record["pue"], places=Decimal("0.001"), low=Decimal(1), high=Decimal("3"))
            except ValueError as exc:
                problems.append(f"{columns[-2]}: {exc}")
            if problems:
                errors += [f"{where}: {problem}" for problem in problems]
                continue
            seen[key] = line
            source = record["source"][:200]
            if model is GridIntensity:
                grid.append(GridIntensity(provider_kind=kind, region=record["region"], g_per_kwh=number, source=source))
            else:
                pues.append(ProviderPue(provider_kind=kind, pue=number, source=source))
    return grid, pues


def _upsert(model, rows, key_fields, figures) -> tuple[int, int, int]:
    existing = {tuple(getattr(o, f) for f in key_fields): o for o in model.objects.select_for_update()}
    create, update = [], []
    for row in rows:
        current = existing.get(tuple(getattr(row, f) for f in key_fields))
        if current is None:
            create.append(row)
        elif any(getattr(current, f) != getattr(row, f) for f in figures):
            for f in figures:
                setattr(current, f, getattr(row, f))
            update.append(current)
    model.objects.bulk_create(create)
    model.objects.bulk_update(update, figures)
    return len(create), len(update), len(rows) - len(create) - len(update)


def carbon_data_load(*, path: Path | str | None = None) -> CarbonLoadReport:
    """Load grid_intensity.csv and provider_pue.csv from ``path`` (default: the shipped billing/data).

    Every row is validated first; a CarbonDataError lists the bad ones. Rows are matched by provider kind (and
    region): a changed figure or source is updated, a row the admin added for a region the file lacks is kept.
    """
    folder = Path(path) if path is not None else DATA_DIR
    errors: list[str] = []
    grid, pues = _shipped_parse(folder, errors)
    if errors:
        raise CarbonDataError("the carbon data has bad rows:\n" + errors_text(errors, limit=MAX_ERRORS_SHOWN))
    report = CarbonLoadReport()
    with transaction.atomic():
        report.grid_created, report.grid_updated, report.grid_unchanged = _upsert(
            GridIntensity, grid, ("provider_kind", "region"), ("g_per_kwh", "source")
        )
        report.pue_created, report.pue_updated, report.pue_unchanged = _upsert(
            ProviderPue, pues, ("provider_kind",), ("pue", "source")
        )
    return report


# --- hourly import -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IntensityImportReport:
    """What an import wrote: rows, how many were new, the sites and the hours they cover."""

    rows: int
    created: int
    updated: int
    site_ids: list[int]
    site_names: list[str]
    first_hour: datetime
    last_hour: datetime


@dataclass
class _Parsed:
    values: dict[tuple[int, datetime], tuple[Decimal, int]] = field(default_factory=dict)  # → (value, line)
    errors: list[str] = field(default_factory=list)
    unknown_sites: dict[str, list[int]] = field(default_factory=dict)


def intensity_hour_parse(text: str, *, now: datetime | None = None) -> datetime:
    """An ISO 8601 time with a UTC offset (or Z) that starts a UTC hour, as UTC; ValueError says what is wrong."""
    if not text:
        raise ValueError("a time is required")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text!r}") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{text!r} has no UTC offset: add Z or ±HH:MM")
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text!r} is out of range") from None
    if (utc.minute, utc.second, utc.microsecond) != (0, 0, 0):
        raise ValueError(f"{text!r} is not the start of a UTC hour ({utc:%H:%M:%S} UTC)")
    latest = (now or timezone.now()) + IMPORT_MAX_AHEAD
    if not IMPORT_EARLIEST <= utc <= latest:
        raise ValueError(f"{text!r} is not between {IMPORT_EARLIEST:%Y-%m-%d} and 7 days from now")
    return utc


def intensity_value_parse(text: str) -> Decimal:
    """A gCO2e/kWh figure in 0..2000, rounded half-even to 2 decimals; ValueError says what is wrong."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a number: {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"not a finite number: {text!r}")
    if value < 0:
        raise ValueError(f"{text} is negative: an intensity is 0 or more gCO2e/kWh")
    if value > G_MAX:
        raise ValueError(f"{text} gCO2e/kWh is absurd: above {G_MAX} (the dirtiest grids are about 1,100)")
    return value.quantize(TWO_PLACES, rounding=ROUND_HALF_EVEN)


def _text_read(file, max_bytes: int) -> str:
    size = getattr(file, "size", None)
    if size is not None and size > max_bytes:
        raise IntensityImportError([f"the file is {size:,} bytes, over the limit of {max_bytes:,}: split it"])
    raw = file.read(max_bytes + 1)
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    if len(raw) > max_bytes:
        raise IntensityImportError([f"the file is over the limit of {max_bytes:,} bytes: split it"])
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IntensityImportError([f"byte {exc.start}: the file is not UTF-8 text"]) from None


def _csv_rows(text: str, max_rows: int) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(the header, [(line, cells)] of the non-blank data rows); header problems and size limits raise."""
    reader = csv.reader(io.StringIO(text), strict=True)
    rows = []
    try:
        for cells in reader:
            if rows and not any(cell.strip() for cell in cells):
                continue  # a blank line; line numbers stay the file's
            rows.append((reader.line_num, cells))
            if len(rows) > max_rows + 1:
                raise IntensityImportError([f"more than {max_rows:,} rows: split the file"])
    except csv.Error as exc:
        raise IntensityImportError([f"line {reader.line_num}: malformed CSV: {exc}"]) from None
    if not rows:
        raise IntensityImportError(["the file is empty; the first line must name the columns site,hour,g_per_kwh"])
    header = [cell.strip().lower() for cell in rows[0][1]]
    errors = [f"column {name!r} is missing" for name in IMPORT_COLUMNS if name not in header]
    errors += [f"unknown column {name!r}" for name in header if name not in IMPORT_COLUMNS]
    errors += [f"column {name!r} appears twice" for name in sorted(set(header)) if header.count(name) > 1]
    if errors:
        raise IntensityImportError([f"line 1 (header): {e}; the columns are site, hour, g_per_kwh" for e in errors])
    if len(rows) == 1:
        raise IntensityImportError(["the file has a header but no rows"])
    return header, rows[1:]


def _parse(header: list[str], rows: list[tuple[int, list[str]]], now: datetime) -> _Parsed:
    names = {cells[header.index("site")].strip() for _, cells in rows if len(cells) == len(header)}
    sites = dict(Site.objects.filter(name__in=names).values_list("name", "pk"))
    parsed = _Parsed()
    for line, cells in rows:
        if len(cells) != len(header):
            parsed.errors.append(f"line {line}: {len(cells)} cells, but the header names {len(header)} columns")
            continue
        record = {name: cell.strip() for name, cell in zip(header, cells, strict=True)}
        problems = []
        site_id = sites.get(record["site"])
        if not record["site"]:
            problems.append("site: a site name is required")
        elif site_id is None:
            parsed.unknown_sites.setdefault(record["site"], []).append(line)
        hour = value = None
        try:
            hour = intensity_hour_parse(record["hour"], now=now)
        except ValueError as exc:
            problems.append(f"hour: {exc}")
        try:
            value = intensity_value_parse(record["g_per_kwh"])
        except ValueError as exc:
            problems.append(f"g_per_kwh: {exc}")
        if site_id is not None and hour is not None:
            first = parsed.values.get((site_id, hour))
            if first is not None:
                problems.append(f"site {record['site']!r} at {hour:%Y-%m-%dT%H:%M}Z again (first on line {first[1]})")
            elif value is not None:
                parsed.values[(site_id, hour)] = (value, line)
        parsed.errors += [f"line {line}: {problem}" for problem in problems]
    for name, lines in parsed.unknown_sites.items():
        listed = ", ".join(str(n) for n in lines[:LINES_NAMED]) + (" …" if len(lines) > LINES_NAMED else "")
        parsed.errors.insert(0, f"unknown site {name!r} on {len(lines)} line(s): {listed}")
    return parsed


def grid_intensity_import(
    *, file, max_bytes: int = IMPORT_MAX_BYTES, max_rows: int = IMPORT_MAX_ROWS, now: datetime | None = None
) -> IntensityImportReport:
    """Import hourly grid carbon intensities from a CSV file (binary or text file object) with the columns
    ``site`` (a site's name), ``hour`` (ISO 8601 with an offset or Z, on a UTC hour) and ``g_per_kwh`` (0..2000).

    All rows are checked first and IntensityImportError lists every problem by line (unknown sites by name);
    then every row is written in one transaction, an hour already there replaced. The ledger's ``co2e_kg`` of
    those hours changes only when they are recomputed (``ledger_backfill``; the API queues it).
    """
    now = now or timezone.now()
    header, rows = _csv_rows(_text_read(file, max_bytes), max_rows)
    parsed = _parse(header, rows, now)
    if parsed.errors:
        raise IntensityImportError(parsed.errors)
    keys = list(parsed.values)
    site_ids = sorted({site_id for site_id, _ in keys})
    hours = [hour for _, hour in keys]
    with transaction.atomic():
        existing = set(
            GridIntensityHour.objects.filter(site_id__in=site_ids, hour__gte=min(hours), hour__lte=max(hours))
            .select_for_update()
            .values_list("site_id", "hour")
        )
        GridIntensityHour.objects.bulk_create(
            [GridIntensityHour(site_id=s, hour=h, g_per_kwh=v) for (s, h), (v, _) in parsed.values.items()],
            update_conflicts=True,
            unique_fields=("site", "hour"),
            update_fields=("g_per_kwh",),
            batch_size=5000,
        )
    updated = sum(1 for key in keys if key in existing)
    return IntensityImportReport(
        rows=len(keys),
        created=len(keys) - updated,
        updated=updated,
        site_ids=site_ids,
        site_names=sorted(Site.objects.filter(pk__in=site_ids).values_list("name", flat=True)),
        first_hour=min(hours),
        last_hour=max(hours),
    )


# --- what holds per site -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SiteIntensity:
    """A site's grid carbon intensity for one UTC hour and where it comes from, with the fallbacks beside it."""

    site: Site
    hour: datetime
    g_per_kwh: Decimal | None
    source: str  # IntensitySource
    operator_g_per_kwh: Decimal | None
    dataset_g_per_kwh: Decimal | None
    dataset_source: str
    latest_hourly: datetime | None  # the site's latest imported hour, if any

    @property
    def warning(self) -> str:
        """Why some of the site's hours have no carbon figure ('' when every hour has one)."""
        if self.operator_g_per_kwh is not None or self.dataset_g_per_kwh is not None:
            return ""
        if self.site.provider.kind == ProviderKind.ONPREM:
            what = "An on-prem site needs its operator value"
        else:
            what = f"The shipped dataset has no value for {self.site.provider.kind} region {self.site.region!r}"
        return f"{what} (carbon_g_per_kwh): hours without an imported value have no carbon figure."


def site_intensity_list(*, at: datetime | None = None) -> list[SiteIntensity]:
    """Every site's intensity for the UTC hour holding ``at`` (default now), by name: four queries."""
    hour = (at or timezone.now()).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    sites = list(Site.objects.select_related("provider").order_by("name"))
    hourly = dict(GridIntensityHour.objects.filter(hour=hour).values_list("site_id", "g_per_kwh"))
    latest = dict(GridIntensityHour.objects.values("site_id").annotate(last=Max("hour")).values_list("site_id", "last"))
    dataset = {(g.provider_kind, g.region): g for g in GridIntensity.objects.all()}
    rows = []
    for site in sites:
        shipped = dataset.get((site.provider.kind, site.region))
        candidates = (
            (IntensitySource.HOURLY, hourly.get(site.pk)),
            (IntensitySource.OPERATOR, site.carbon_g_per_kwh),
            (IntensitySource.DATASET, shipped.g_per_kwh if shipped else None),
        )
        source, value = next(((s, v) for s, v in candidates if v is not None), (IntensitySource.UNKNOWN, None))
        rows.append(
            SiteIntensity(
                site=site,
                hour=hour,
                g_per_kwh=value,
                source=source,
                operator_g_per_kwh=site.carbon_g_per_kwh,
                dataset_g_per_kwh=shipped.g_per_kwh if shipped else None,
                dataset_source=shipped.source if shipped else "",
                latest_hourly=latest.get(site.pk),
            )
        )
    return rows


def sites_without_intensity() -> list[SiteIntensity]:
    """The sites with neither an operator value nor a dataset value: their hours have a carbon figure only where
    hourly values were imported (on-prem sites nobody set a value for, cloud regions the dataset lacks)."""
    return [row for row in site_intensity_list() if row.warning]
