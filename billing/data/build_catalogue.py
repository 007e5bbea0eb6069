"""Build billing/data/instance_prices.csv from the SkyPilot catalog excerpts in ../shared/fixtures/prices/.

Run from the repository root: ``python -m billing.data.build_catalogue ../shared/fixtures`` (prints the CSV on
stdout; ``--write`` replaces the shipped file). The rules are in billing/data/README.md; in short:

- AWS rows are per availability zone: one row per (region, type); the on-demand price must agree across the
  zones, spot is the mean of the zones' spot prices (6 decimals), an empty cell stays empty.
- GCP rows split the price: a VM row (vCPU and RAM) plus an accelerator row (GPU name and count) make the
  instance price, on-demand and spot alike.
- Machine types SkyPilot's excerpt cannot price (no VM row) take Cyclenerd's pricing.yml excerpt (whole-instance
  hour and hour_spot, us-central1), which the GCP fixture README lists beside it.
- Dated facts from the fixtures README (the June 2025 AWS GPU price cut) are added as price history.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fleet.catalog import GPU_SPECS, INSTANCE_TYPES  # noqa: E402

DATA_DIR = Path(__file__).resolve().parent
OUTPUT = DATA_DIR / "instance_prices.csv"
AWS_FILE = "prices/aws_vms_v8_gpu_us-east-1_excerpt.csv"
GCP_FILE = "prices/gcp_vms_v8_gpu_us-central1_excerpt.csv"
CYCLENERD_FILE = "gcp/cyclenerd_pricing_yml_excerpt_us-central1.yml"
CYCLENERD_COMMIT = "0166a59"
AWS_COMMIT = "00148f2"
GCP_COMMIT = "006059e"
COLUMNS = (
    "provider_kind",
    "region",
    "instance_type",
    "gpu_model",
    "gpu_count",
    "on_demand_usd_per_h",
    "spot_usd_per_h",
    "effective_from",
    "note",
)
SIX_PLACES = Decimal("0.000001")
# The AWS rows of the excerpt carry the prices after AWS's June 2025 GPU price cut (p5.48xlarge $55.04).
AWS_EFFECTIVE_FROM = "2025-06-01"
# The GCP rows agree with Cyclenerd's pricing.yml generated on 2025-03-06 (a2-highgpu-1g $3.673385/h).
GCP_EFFECTIVE_FROM = "2025-03-06"
# The pre-cut prices held at least from this day (both types had launched: p4d in 2020, p5 in 2023); the exact
# first day of those prices is not in the fixtures.
PRE_CUT_EFFECTIVE_FROM = "2024-01-01"
PRE_CUT_PRICES = (
    # region, type, on-demand $/h before the cut (fixtures README, from the SkyPilot catalog history)
    ("us-east-1", "p5.48xlarge", "98.32"),
    ("us-east-1", "p4d.24xlarge", "32.7726"),
)

# SkyPilot accelerator names → Fleetdeck catalogue keys (fleet.catalog.GPU_SPECS). 'A100' is the 40 GB part on
# both clouds (AWS p4d: SizeInMiB 40960; GCP's a2-highgpu: nvidia-tesla-a100).
SKYPILOT_GPU_KEYS = {
    "A100": "A100-40GB",
    "A100-80GB": "A100-80GB",
    "H100": "H100",
    "H200": "H200",
    "B200": "B200",
    "A10G": "A10G",
    "L4": "L4",
    "L40S": "L40S",
    "T4": "T4",
}
# GCP machine types the catalogue does not list, by GCE naming: a2-highgpu-Ng = N×A100 40GB, a3-highgpu-Ng =
# N×H100, g2-standard-4/8 = 1×L4, a3-edgegpu-8g = 8×H100.
GCE_NAMED_TYPES = {
    "a2-highgpu-2g": ("A100-40GB", 2),
    "a2-highgpu-4g": ("A100-40GB", 4),
    "a3-highgpu-1g": ("H100", 1),
    "a3-highgpu-2g": ("H100", 2),
    "a3-highgpu-4g": ("H100", 4),
    "a3-edgegpu-8g": ("H100", 8),
    "g2-standard-8": ("L4", 1),
}


class BuildError(Exception):
    """The fixture data break a rule of the build (zones disagree, an unknown GPU)."""


@dataclass(frozen=True)
class Row:
    """One line of the shipped catalogue."""

    provider_kind: str
    region: str
    instance_type: str
    gpu_model: str
    gpu_count: int
    on_demand: Decimal | None
    spot: Decimal | None
    effective_from: str
    note: str

    def sort_key(self):
        return (self.provider_kind, self.region, self.instance_type, self.effective_from)

    def cells(self) -> list[str]:
        return [
            self.provider_kind,
            self.region,
            self.instance_type,
            self.gpu_model,
            str(self.gpu_count),
            money(self.on_demand),
            money(self.spot),
            self.effective_from,
            self.note,
        ]


def money(value: Decimal | None) -> str:
    """A price as the CSV writes it: plain digits, no trailing zeros, empty for none."""
    if value is None:
        return ""
    text = format(value.quantize(SIX_PLACES, rounding=ROUND_HALF_EVEN), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def decimal_or_none(text: str) -> Decimal | None:
    text = text.strip()
    return Decimal(text) if text else None


def mean(values: list[Decimal]) -> Decimal | None:
    if not values:
        return None
    return (sum(values, Decimal(0)) / len(values)).quantize(SIX_PLACES, rounding=ROUND_HALF_EVEN)


def one_value(values: set[Decimal | None], what: str) -> Decimal | None:
    """The value all zones agree on; a BuildError when they do not."""
    if len(values) != 1:
        shown = ", ".join(sorted(money(v) or "empty" for v in values))
        raise BuildError(f"{what}: the zones disagree on the on-demand price ({shown})")
    return next(iter(values))


def aws_rows(path: Path) -> list[Row]:
    """One row per (region, instance type) of SkyPilot's per-AZ AWS rows."""
    zones = defaultdict(list)
    for record in csv.DictReader(path.open(newline="")):
        zones[(record["Region"], record["InstanceType"])].append(record)
    rows = []
    for (region, instance_type), records in sorted(zones.items()):
        name = records[0]["AcceleratorName"]
        count = int(Decimal(records[0]["AcceleratorCount"]))
        key = SKYPILOT_GPU_KEYS.get(name)
        known = INSTANCE_TYPES.get(instance_type)
        if known is not None and (known.gpu, known.gpu_count) != (key, count):
            raise BuildError(f"aws {instance_type}: SkyPilot says {count}×{name}, fleet.catalog {known}")
        if key is None:
            raise BuildError(f"aws {instance_type}: no catalogue key for SkyPilot GPU {name!r}")
        on_demand = one_value({decimal_or_none(r["Price"]) for r in records}, f"aws {region} {instance_type}")
        spots = [decimal_or_none(r["SpotPrice"]) for r in records]
        spot = mean([s for s in spots if s is not None])
        azs = ",".join(sorted(r["AvailabilityZone"] for r in records))
        spot_note = f"spot = mean of {len([s for s in spots if s is not None])} AZ(s)" if spot else "no spot price"
        rows.append(
            Row(
                "aws",
                region,
                instance_type,
                key,
                count,
                on_demand,
                spot,
                AWS_EFFECTIVE_FROM,
                f"SkyPilot catalog v8 aws/vms.csv @{AWS_COMMIT}; AZs {azs}; {spot_note}",
            )
        )
    return rows


def gcp_gpu(instance_type: str) -> tuple[str, int] | None:
    """(catalogue key, count) of a GCP machine type: fleet.catalog first, then the GCE naming."""
    known = INSTANCE_TYPES.get(instance_type)
    if known is not None:
        return known.gpu, known.gpu_count
    return GCE_NAMED_TYPES.get(instance_type)


def gcp_rows(path: Path) -> tuple[list[Row], list[str]]:
    """Instance prices = VM row + accelerator row, per region; and what could not be priced."""
    vms = defaultdict(list)
    gpus = defaultdict(list)
    for record in csv.DictReader(path.open(newline="")):
        if record["InstanceType"]:
            vms[(record["Region"], record["InstanceType"])].append(record)
        else:
            key = SKYPILOT_GPU_KEYS.get(record["AcceleratorName"], record["AcceleratorName"])
            gpus[(record["Region"], key, int(Decimal(record["AcceleratorCount"])))].append(record)
    rows, skipped, used = [], [], set()
    for (region, instance_type), vm_records in sorted(vms.items()):
        shape = gcp_gpu(instance_type)
        if shape is None:
            skipped.append(f"gcp {region} {instance_type}: GPU model unknown")
            continue
        key, count = shape
        gpu_records = gpus.get((region, key, count))
        if not gpu_records:
            skipped.append(f"gcp {region} {instance_type}: no {count}×{key} accelerator row in {region}")
            continue
        used.add((region, key, count))
        vm_price = one_value({decimal_or_none(r["Price"]) for r in vm_records}, f"gcp {region} {instance_type}")
        gpu_price = one_value({decimal_or_none(r["Price"]) for r in gpu_records}, f"gcp {region} {count}×{key}")
        vm_spot = mean([s for s in (decimal_or_none(r["SpotPrice"]) for r in vm_records) if s is not None])
        gpu_spot = mean([s for s in (decimal_or_none(r["SpotPrice"]) for r in gpu_records) if s is not None])
        on_demand = vm_price + gpu_price if vm_price is not None and gpu_price is not None else None
        spot = vm_spot + gpu_spot if vm_spot is not None and gpu_spot is not None else None
        if on_demand is None and spot is None:
            skipped.append(f"gcp {region} {instance_type}: neither price can be summed")
            continue
        rows.append(
            Row(
                "gcp",
                region,
                instance_type,
                key,
                count,
                on_demand,
                spot,
                GCP_EFFECTIVE_FROM,
                f"SkyPilot catalog v8 gcp/vms.csv @{GCP_COMMIT}; VM {money(vm_price)} + {count}x{key} "
                f"{money(gpu_price)}; spot VM {money(vm_spot) or '-'} + GPU {money(gpu_spot) or '-'}",
            )
        )
    for region, key, count in sorted(set(gpus) - used):
        skipped.append(f"gcp {region} accelerator {count}×{key}: no VM row of a machine type that carries it")
    return rows, skipped


def cyclenerd_rows(path: Path, priced: set[tuple[str, str, str]]) -> list[Row]:
    """Whole-instance GCP prices from Cyclenerd's pricing.yml, for the machine types not priced otherwise."""
    import yaml

    rows = []
    for instance_type, entry in sorted(yaml.safe_load(path.read_text())["compute"]["instance"].items()):
        shape = gcp_gpu(instance_type)
        if shape is None:
            raise BuildError(f"cyclenerd {instance_type}: GPU model unknown")
        for region, cost in sorted(entry["cost"].items()):
            if ("gcp", region, instance_type) in priced:
                continue
            rows.append(
                Row(
                    "gcp",
                    region,
                    instance_type,
                    shape[0],
                    shape[1],
                    Decimal(str(cost["hour"])).quantize(SIX_PLACES, ROUND_HALF_EVEN),
                    Decimal(str(cost["hour_spot"])).quantize(SIX_PLACES, ROUND_HALF_EVEN),
                    GCP_EFFECTIVE_FROM,
                    f"Cyclenerd pricing.yml @{CYCLENERD_COMMIT} (generated 2025-03-06): hour, hour_spot",
                )
            )
    return rows


def history_rows(current: list[Row]) -> list[Row]:
    """The pre-June-2025 AWS prices, for the instance types whose current row is in the catalogue."""
    by_key = {(r.provider_kind, r.region, r.instance_type): r for r in current}
    rows = []
    for region, instance_type, price in PRE_CUT_PRICES:
        now = by_key.get(("aws", region, instance_type))
        if now is None:
            raise BuildError(f"aws {region} {instance_type}: the history needs the current row")
        rows.append(
            Row(
                "aws",
                region,
                instance_type,
                now.gpu_model,
                now.gpu_count,
                Decimal(price),
                None,
                PRE_CUT_EFFECTIVE_FROM,
                "Before AWS's June 2025 GPU price cut (fixtures README facts, SkyPilot catalog history); "
                "in force by this day, first day unknown; no spot figure known",
            )
        )
    return rows


def catalogue_build(fixtures: Path) -> tuple[str, list[str]]:
    """The CSV text of the shipped catalogue, and the combinations that could not be priced."""
    gcp, skipped = gcp_rows(fixtures / GCP_FILE)
    current = aws_rows(fixtures / AWS_FILE) + gcp
    current += cyclenerd_rows(
        fixtures / CYCLENERD_FILE, {(r.provider_kind, r.region, r.instance_type) for r in current}
    )
    rows = sorted(current + history_rows(current), key=Row.sort_key)
    for row in rows:
        if row.gpu_model not in GPU_SPECS:
            raise BuildError(f"{row.instance_type}: {row.gpu_model} is not a catalogue GPU key")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(row.cells())
    return out.getvalue(), skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fixtures", type=Path, help="the shared/fixtures folder")
    parser.add_argument("--write", action="store_true", help=f"replace {OUTPUT.name} instead of printing")
    args = parser.parse_args(argv)
    text, skipped = catalogue_build(args.fixtures)
    if args.write:
        OUTPUT.write_text(text)
    else:
        sys.stdout.write(text)
    for line in skipped:
        print(f"skipped: {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
