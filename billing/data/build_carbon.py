"""Build billing/data/grid_intensity.csv from CodeCarbon's wheel (GCP) and Cloud Carbon Footprint's npm packages (AWS).

Run from the repository root (prints the CSV on stdout; ``--write`` replaces the shipped file)::

    python -m billing.data.build_carbon --codecarbon codecarbon-3.3.2-py3-none-any.whl \\
        --ccf-aws cloud-carbon-footprint-aws-0.15.0.tgz --ccf-core cloud-carbon-footprint-core-0.17.3.tgz

Get the inputs with ``pip download codecarbon==3.3.2 --no-deps`` and ``npm pack @cloud-carbon-footprint/aws@0.15.0
@cloud-carbon-footprint/core@0.17.3`` (core 0.17.3 is what aws 0.15.0's dependency ``^0.17.3`` resolves to). The
rules are in billing/data/README.md; in short:

- GCP: every ``gcp`` row of CodeCarbon's ``codecarbon/data/cloud/impact.csv`` (``impact`` is gCO2e/kWh: Google's
  published grid carbon intensity of the region). CodeCarbon's one misspelt region id is corrected (REGION_FIXES).
- AWS: Cloud Carbon Footprint's ``AWS_EMISSIONS_FACTORS_METRIC_TON_PER_KWH`` (metric tons CO2e per kWh, × 10^6 =
  g/kWh); its US regions refer to core's ``US_NERC_REGIONS_EMISSIONS_FACTORS``, resolved here. CCF's ``Unknown``
  entry (an average of its regions) is not a region and is left out.
- Values are rounded half-even to 2 decimals (the column's precision); each must lie in 0..2000 g/kWh.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
import tarfile
import zipfile
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
OUTPUT = DATA_DIR / "grid_intensity.csv"
COLUMNS = ("provider_kind", "region", "g_per_kwh", "source")
IMPACT_CSV = "codecarbon/data/cloud/impact.csv"
CCF_REGIONS_TS = "package/src/lib/AWSRegions.ts"
CCF_FACTORS_TS = "package/src/domain/AwsFootprintEstimationConstants.ts"
CCF_NERC_TS = "package/src/FootprintEstimationConstants.ts"
TWO_PLACES = Decimal("0.01")
G_PER_METRIC_TON = Decimal(1_000_000)
MAX_G_PER_KWH = Decimal(2000)  # fleet.models.inventory.CARBON_G_PER_KWH_MAX; not imported: the build runs alone
# CodeCarbon 3.3.2 spells Google's Doha region "me-cenrtal1" (its city column says Doha: Google's me-central1).
REGION_FIXES = {"me-cenrtal1": ("me-central1", "Doha")}
# Where CCF's methodology (Appendix V, "Grid emissions factors") says its per-country AWS factors come from.
EEA_REGIONS = {"eu-central-1", "eu-west-1", "eu-west-2", "eu-south-1", "eu-west-3", "eu-north-1"}
UNSOURCED_REGIONS = {"ap-southeast-3", "me-central-1"}  # added to CCF later; the methodology table lacks them
GCP_SOURCE = "CodeCarbon {version} impact.csv: Google's 2023 grid carbon intensity (cloud.google.com/sustainability)"


class BuildError(ValueError):
    """An input does not look like the file the build expects; the message says which and why."""


def _number(text: str, where: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise BuildError(f"{where}: not a number: {text!r}") from None
    if not value.is_finite():
        raise BuildError(f"{where}: not a finite number: {text!r}")
    return value


def _g_per_kwh(value: Decimal, where: str) -> Decimal:
    rounded = value.quantize(TWO_PLACES, rounding=ROUND_HALF_EVEN)
    if not 0 <= rounded <= MAX_G_PER_KWH:
        raise BuildError(f"{where}: {rounded} g/kWh is outside 0..{MAX_G_PER_KWH}")
    return rounded


# --- GCP: CodeCarbon ---------------------------------------------------------------------------------------
def codecarbon_read(wheel: Path) -> tuple[str, str]:
    """(CodeCarbon's version, the text of its cloud impact.csv) from the wheel (a zip)."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next((n for n in names if n.endswith(".dist-info/METADATA")), None)
        if metadata is None or IMPACT_CSV not in names:
            raise BuildError(f"{wheel.name}: not a CodeCarbon wheel (no METADATA or {IMPACT_CSV})")
        version = re.search(r"^Version: (\S+)$", archive.read(metadata).decode(), re.MULTILINE)
        if version is None:
            raise BuildError(f"{wheel.name}: METADATA names no version")
        return version.group(1), archive.read(IMPACT_CSV).decode("utf-8-sig")


def gcp_rows(impact_csv: str, *, version: str) -> list[tuple[str, str, Decimal, str]]:
    """(gcp, region, g/kWh, source) for every ``gcp`` row of CodeCarbon's impact.csv."""
    reader = csv.DictReader(io.StringIO(impact_csv))
    missing = {"provider", "region", "city", "impact"} - set(reader.fieldnames or ())
    if missing:
        raise BuildError(f"impact.csv: missing columns {', '.join(sorted(missing))}")
    rows, seen = [], set()
    for record in reader:
        if record["provider"].strip() != "gcp":
            continue
        where = f"impact.csv:{reader.line_num}"
        region = record["region"].strip()
        if region in REGION_FIXES:
            region, city = REGION_FIXES[region]
            if record["city"].strip() != city:
                raise BuildError(f"{where}: {record['region']!r} is not in {city}; check REGION_FIXES")
        if region in seen:
            raise BuildError(f"{where}: region {region} appears twice")
        seen.add(region)
        value = _g_per_kwh(_number(record["impact"], where), where)
        rows.append(("gcp", region, value, GCP_SOURCE.format(version=version)))
    if not rows:
        raise BuildError("impact.csv: no gcp rows")
    return rows


# --- AWS: Cloud Carbon Footprint ---------------------------------------------------------------------------
def _npm_read(tarball: Path, members: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """(the package's version, {member: text}) from an npm tarball."""
    with tarfile.open(tarball, "r:gz") as archive:
        names = set(archive.getnames())
        absent = [m for m in ("package/package.json", *members) if m not in names]
        if absent:
            raise BuildError(f"{tarball.name}: no {', '.join(absent)}")
        package = json.loads(archive.extractfile("package/package.json").read())
        texts = {m: archive.extractfile(m).read().decode() for m in members}
    return package["version"], texts


def _block(text: str, name: str, where: str) -> str:
    """The ``{ … }`` body of ``enum name {…}`` or ``name: Type = {…}`` in ``text`` (a type annotation such as
    ``{ [key: string]: number }`` before the ``=`` is skipped; no nested braces expected in the body)."""
    head = r"\s*\{" if name.startswith("enum ") else r"\b[^=]*?=\s*\{"
    match = re.search(re.escape(name) + head + r"([^{}]*)\}", text)
    if match is None:
        raise BuildError(f"{where}: no {name} {{ … }} block")
    return match.group(1)


def ccf_aws_rows(
    *, regions_ts: str, factors_ts: str, nerc_ts: str, aws_version: str, core_version: str
) -> list[tuple[str, str, Decimal, str]]:
    """(aws, region, g/kWh, source) for every region of CCF's AWS emission factors (NERC references resolved)."""
    enum = dict(
        re.findall(r"^\s*([A-Z0-9_]+)\s*=\s*'([^']+)'", _block(regions_ts, "enum AWS_REGIONS", "AWSRegions.ts"), re.M)
    )
    nerc = {
        key: _number(value, f"core {key}")
        for key, value in re.findall(
            r"([A-Z]+)\s*:\s*([0-9.eE+-]+)", _block(nerc_ts, "US_NERC_REGIONS_EMISSIONS_FACTORS", "core")
        )
    }
    body = _block(factors_ts, "AWS_EMISSIONS_FACTORS_METRIC_TON_PER_KWH", "AwsFootprintEstimationConstants.ts")
    rows = []
    for line in body.splitlines():
        line = line.split("//")[0].strip().rstrip(",")
        if not line:
            continue
        entry = re.fullmatch(r"\[AWS_REGIONS\.([A-Z0-9_]+)\]\s*:\s*(.+)", line)
        if entry is None:
            raise BuildError(f"AWS factors: cannot read {line!r}")
        key, value = entry.groups()
        if key not in enum:
            raise BuildError(f"AWS factors: AWS_REGIONS.{key} is not in the AWS_REGIONS enum")
        region = enum[key]
        if region == "Unknown":
            continue  # CCF's average of its regions, not a region
        reference = re.fullmatch(r"US_NERC_REGIONS_EMISSIONS_FACTORS\.([A-Z]+)", value)
        if reference:
            if reference.group(1) not in nerc:
                raise BuildError(f"AWS factors: {region} refers to an unknown NERC region {reference.group(1)}")
            tons = nerc[reference.group(1)]
            origin = f"core {core_version}: EPA eGRID, NERC {reference.group(1)}"
        else:
            tons = _number(value, f"AWS factors {region}")
            if region in EEA_REGIONS:
                origin = "EEA country factor"
            elif region in UNSOURCED_REGIONS:
                origin = "country factor, source not named in CCF's methodology"
            else:
                origin = "carbonfootprint.com 2022 country factor"
        value_g = _g_per_kwh(tons * G_PER_METRIC_TON, f"AWS factors {region}")
        rows.append(("aws", region, value_g, f"Cloud Carbon Footprint aws {aws_version} ({origin})"))
    if not rows:
        raise BuildError("AWS factors: no regions")
    return rows


def carbon_build(*, codecarbon: Path, ccf_aws: Path, ccf_core: Path) -> str:
    """The text of grid_intensity.csv built from the three downloaded packages."""
    version, impact = codecarbon_read(codecarbon)
    aws_version, aws = _npm_read(ccf_aws, (CCF_REGIONS_TS, CCF_FACTORS_TS))
    core_version, core = _npm_read(ccf_core, (CCF_NERC_TS,))
    rows = gcp_rows(impact, version=version) + ccf_aws_rows(
        regions_ts=aws[CCF_REGIONS_TS],
        factors_ts=aws[CCF_FACTORS_TS],
        nerc_ts=core[CCF_NERC_TS],
        aws_version=aws_version,
        core_version=core_version,
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for kind, region, value, source in sorted(rows, key=lambda r: (r[0], r[1])):
        writer.writerow((kind, region, f"{value:.2f}", source))
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codecarbon", type=Path, required=True, help="codecarbon-3.3.2-py3-none-any.whl")
    parser.add_argument("--ccf-aws", type=Path, required=True, help="cloud-carbon-footprint-aws-0.15.0.tgz")
    parser.add_argument("--ccf-core", type=Path, required=True, help="cloud-carbon-footprint-core-0.17.3.tgz")
    parser.add_argument("--write", action="store_true", help=f"replace {OUTPUT.name} instead of printing")
    args = parser.parse_args(argv)
    text = carbon_build(codecarbon=args.codecarbon, ccf_aws=args.ccf_aws, ccf_core=args.ccf_core)
    if args.write:
        OUTPUT.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
