"""The shipped carbon data (billing/data/grid_intensity.csv, provider_pue.csv): its build, its load, and the ledger
figures it gives (billing.carbon, billing.data.build_carbon)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tarfile
import zipfile
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from billing.carbon import DATA_DIR, CarbonDataError, carbon_data_load
from billing.data.build_carbon import BuildError, carbon_build
from billing.ledger import ledger_backfill
from billing.models import GridIntensity, GridIntensityHour, LedgerEntry, OnPremCostModel, ProviderPue
from fleet.choices import NodeLifecycle
from fleet.models import Site
from tests.billing.test_ledger import node_with_gpus, rollup_insert
from tests.factories import OnPremSiteFactory, SiteFactory

D = Decimal


def shipped(name: str) -> list[dict]:
    with (DATA_DIR / name).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# --- the shipped files -------------------------------------------------------------------------------------
def test_the_shipped_dataset_covers_both_clouds_with_plausible_figures():
    rows = shipped("grid_intensity.csv")
    by_key = {(r["provider_kind"], r["region"]): D(r["g_per_kwh"]) for r in rows}
    assert len(by_key) == len(rows) == 67  # 27 AWS regions (CCF) + 40 GCP regions (CodeCarbon)
    assert sum(1 for kind, _ in by_key if kind == "aws") == 27
    # Hand-checked against the sources: CCF SERC 0.000379069 t/kWh; Google's 2023 us-central1 430 g/kWh
    assert by_key[("aws", "us-east-1")] == D("379.07")
    assert by_key[("aws", "eu-north-1")] == D("8.80")  # CCF 0.0000088 t/kWh (Sweden)
    assert by_key[("gcp", "us-central1")] == D("430.00")
    assert by_key[("gcp", "me-central1")] == D("575.00")  # CodeCarbon spells it me-cenrtal1
    assert ("gcp", "me-cenrtal1") not in by_key and ("aws", "Unknown") not in by_key
    assert all(D(0) <= value <= D(2000) for value in by_key.values())
    # every region the demo fleet uses has a figure
    for key in (("aws", "us-east-1"), ("aws", "us-west-2"), ("aws", "eu-west-1"), ("gcp", "europe-west4")):
        assert key in by_key
    assert all(r["source"] for r in rows)
    pue = {r["provider_kind"]: D(r["pue"]) for r in shipped("provider_pue.csv")}
    assert pue == {"aws": D("1.150"), "gcp": D("1.100")}


@pytest.mark.django_db
def test_loading_is_idempotent_and_keeps_rows_the_admin_added():
    report = carbon_data_load()
    assert (report.grid_created, report.pue_created) == (67, 2)
    assert GridIntensity.objects.get(provider_kind="aws", region="us-east-1").g_per_kwh == D("379.07")
    assert ProviderPue.objects.get(provider_kind="gcp").pue == D("1.100")
    GridIntensity.objects.create(provider_kind="aws", region="ap-south-2", g_per_kwh=D("700"), source="admin")
    GridIntensity.objects.filter(region="us-east-1").update(g_per_kwh=D("1"))  # an edit the next load reverts
    again = carbon_data_load()
    assert again.as_dict() == {
        "grid_created": 0,
        "grid_updated": 1,
        "grid_unchanged": 66,
        "pue_created": 0,
        "pue_updated": 0,
        "pue_unchanged": 2,
    }
    assert GridIntensity.objects.get(region="us-east-1").g_per_kwh == D("379.07")
    assert GridIntensity.objects.filter(region="ap-south-2").exists()


def copy_data(folder: Path) -> Path:
    for name in ("instance_prices.csv", "egress_rates.csv", "grid_intensity.csv", "provider_pue.csv"):
        shutil.copy(DATA_DIR / name, folder / name)
    return folder


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("grid_intensity.csv", "kind,region\n", "grid_intensity.csv:1: expected the columns provider_kind"),
        ("grid_intensity.csv", "provider_kind,region,g_per_kwh,source\nonprem,x,100,s\n", ":2: provider_kind"),
        ("grid_intensity.csv", "provider_kind,region,g_per_kwh,source\naws,x,-1,s\n", ":2: g_per_kwh: must be"),
        ("grid_intensity.csv", "provider_kind,region,g_per_kwh,source\naws,x,2000.01,s\n", ":2: g_per_kwh"),
        ("grid_intensity.csv", "provider_kind,region,g_per_kwh,source\naws,x,1.001,s\n", "at most 2 decimal"),
        ("grid_intensity.csv", "provider_kind,region,g_per_kwh,source\naws,x,1,s\naws,x,2,s\n", ":3: the same region"),
        ("grid_intensity.csv", "provider_kind,region,g_per_kwh,source\naws,,1,\n", ":2: source: required"),
        ("provider_pue.csv", "provider_kind,pue,source\naws,0.9,s\n", "provider_pue.csv:2: pue: must be"),
        ("provider_pue.csv", "provider_kind,pue,source\naws,1.1\n", "provider_pue.csv:2: expected 3 cells"),
    ],
)
def test_a_bad_shipped_row_is_named_by_file_and_line_and_nothing_loads(tmp_path, name, text, message):
    folder = copy_data(tmp_path)
    (folder / name).write_text(text)
    with pytest.raises(CarbonDataError, match=message):
        carbon_data_load(path=folder)
    assert not GridIntensity.objects.exists() and not ProviderPue.objects.exists()


@pytest.mark.django_db
def test_load_prices_loads_the_carbon_data_too_and_fails_whole(tmp_path, capsys):
    call_command("load_prices")
    out = capsys.readouterr().out
    assert "grid intensities: 67 created, 0 updated, 0 unchanged" in out
    assert "provider PUEs: 2 created, 0 updated, 0 unchanged" in out
    GridIntensity.objects.all().delete()
    folder = copy_data(tmp_path)
    (folder / "provider_pue.csv").unlink()
    with pytest.raises(CommandError, match="provider_pue.csv: file not found"):
        call_command("load_prices", "--path", str(folder))
    assert not GridIntensity.objects.exists()  # prices and carbon load in one transaction


# --- the figures in the ledger -----------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_ledger_uses_hourly_then_operator_values_on_prem_and_dataset_times_pue_in_the_cloud():
    carbon_data_load()
    site = OnPremSiteFactory(pue=D("1.40"), carbon_g_per_kwh=D("200"))
    OnPremCostModel.objects.create(
        site=site,
        purchase_usd_per_gpu=D("37500"),
        amortisation_months=48,
        ops_usd_per_gpu_year=D("3750"),
        effective_from=date(2026, 1, 1),
    )
    onprem = node_with_gpus(
        site=site, lifecycle=NodeLifecycle.OWNED, external_id="", launched_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    cloud = node_with_gpus(site=SiteFactory(region="us-east-1"), launched_at=datetime(2026, 1, 1, tzinfo=UTC))
    ten, eleven = datetime(2026, 3, 2, 10, tzinfo=UTC), datetime(2026, 3, 2, 11, tzinfo=UTC)
    for node, wh in ((onprem, 700.0), (cloud, 650.0)):
        rollup_insert(node, ten, energy_wh=wh)
        rollup_insert(node, eleven, energy_wh=wh)
    GridIntensityHour.objects.create(site=site, hour=ten, g_per_kwh=D("100"))
    ledger_backfill(start=date(2026, 3, 2), end=date(2026, 3, 2), now=datetime(2026, 3, 10, tzinfo=UTC))
    co2e = {(e.node_id, e.hour): e.co2e_kg for e in LedgerEntry.objects.filter(hour__in=(ten, eleven))}
    # on-prem: 8 × 700 Wh = 5.6 kWh × site PUE 1.4 = 7.84 kWh; × 100 g (hourly) / 1000; × 200 g (operator) / 1000
    assert co2e[(onprem.pk, ten)] == D("0.784000")
    assert co2e[(onprem.pk, eleven)] == D("1.568000")
    # AWS us-east-1: 8 × 650 Wh = 5.2 kWh × AWS PUE 1.15 = 5.98 kWh × 379.07 g / 1000 = 2.2668386 kg
    assert co2e[(cloud.pk, ten)] == D("2.266839")
    # an hour without roll-ups used no measured energy: 0 kg, not unknown
    assert LedgerEntry.objects.get(node=onprem, hour=datetime(2026, 3, 2, 9, tzinfo=UTC)).co2e_kg == 0


@pytest.mark.django_db
def test_a_site_without_any_intensity_gets_empty_co2e():
    site = OnPremSiteFactory(carbon_g_per_kwh=None)
    node = node_with_gpus(site=site, lifecycle=NodeLifecycle.OWNED, external_id="")
    hour = datetime(2026, 3, 2, 10, tzinfo=UTC)
    node.launched_at = datetime(2026, 1, 1, tzinfo=UTC)
    node.save(update_fields=["launched_at"])
    rollup_insert(node, hour, energy_wh=700.0)
    ledger_backfill(start=date(2026, 3, 2), end=date(2026, 3, 2), now=datetime(2026, 3, 10, tzinfo=UTC))
    assert LedgerEntry.objects.get(node=node, hour=hour).co2e_kg is None


# --- the build -----------------------------------------------------------------------------------------------
IMPACT = (
    "\ufeffprovider,providerName,offsetRatio,region,regionName,country_name,countryIsoCode,state,city,impact,source,"
    "comment\n"
    "gcp,Google Cloud Platform,100,us-central1,,USA,USA,Iowa,Council Bluffs,430,https://x,\n"
    "gcp,Google Cloud Platform,100,me-cenrtal1,,Qatar,QAT,,Doha,575,https://x,\n"
    "aws,Amazon Web Services,100,us-east-1,,USA,USA,,,999,https://x,\n"
)
REGIONS_TS = """export enum AWS_REGIONS {
  US_EAST_1 = 'us-east-1',
  EU_NORTH_1 = 'eu-north-1',
  UNKNOWN = 'Unknown',
}"""
FACTORS_TS = """export const AWS_EMISSIONS_FACTORS_METRIC_TON_PER_KWH: CloudConstantsEmissionsFactors =
  {
    [AWS_REGIONS.US_EAST_1]: US_NERC_REGIONS_EMISSIONS_FACTORS.SERC,
    [AWS_REGIONS.EU_NORTH_1]: 0.0000088,
    [AWS_REGIONS.UNKNOWN]: 0.00039278188, // Average of the above regions
  }"""
NERC_TS = """export const US_NERC_REGIONS_EMISSIONS_FACTORS: {
  [nercRegion: string]: number
} = {
  RFC: 0.000410608,
  SERC: 0.000379069,
}"""


def wheel(folder: Path, impact: str = IMPACT) -> Path:
    path = folder / "codecarbon-9.9.9-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(
            "codecarbon-9.9.9.dist-info/METADATA", "Metadata-Version: 2.4\nName: codecarbon\nVersion: 9.9.9\n"
        )
        archive.writestr("codecarbon/data/cloud/impact.csv", impact)
    return path


def tarball(folder: Path, name: str, version: str, files: dict[str, str]) -> Path:
    path = folder / f"{name}-{version}.tgz"
    with tarfile.open(path, "w:gz") as archive:
        for member, text in {"package/package.json": json.dumps({"version": version}), **files}.items():
            data = text.encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def build(folder: Path, *, factors: str = FACTORS_TS, impact: str = IMPACT) -> str:
    return carbon_build(
        codecarbon=wheel(folder, impact),
        ccf_aws=tarball(
            folder,
            "aws",
            "0.15.0",
            {
                "package/src/lib/AWSRegions.ts": REGIONS_TS,
                "package/src/domain/AwsFootprintEstimationConstants.ts": factors,
            },
        ),
        ccf_core=tarball(folder, "core", "0.17.3", {"package/src/FootprintEstimationConstants.ts": NERC_TS}),
    )


def test_the_build_converts_units_resolves_nerc_references_and_fixes_the_misspelt_region(tmp_path):
    rows = list(csv.reader(io.StringIO(build(tmp_path))))
    assert rows[0] == ["provider_kind", "region", "g_per_kwh", "source"]
    assert [r[:3] for r in rows[1:]] == [
        ["aws", "eu-north-1", "8.80"],  # 0.0000088 t/kWh × 10^6
        ["aws", "us-east-1", "379.07"],  # SERC 0.000379069 t/kWh, rounded half-even
        ["gcp", "me-central1", "575.00"],
        ["gcp", "us-central1", "430.00"],
    ]  # CodeCarbon's aws row and CCF's "Unknown" average are left out
    assert rows[2][3] == "Cloud Carbon Footprint aws 0.15.0 (core 0.17.3: EPA eGRID, NERC SERC)"
    assert rows[1][3] == "Cloud Carbon Footprint aws 0.15.0 (EEA country factor)"
    assert rows[4][3].startswith("CodeCarbon 9.9.9 impact.csv")


@pytest.mark.parametrize(
    ("factors", "impact", "message"),
    [
        (FACTORS_TS.replace(".SERC", ".NPCC"), IMPACT, "unknown NERC region NPCC"),
        (FACTORS_TS.replace("0.0000088", "0.0021"), IMPACT, "2100.00 g/kWh is outside"),
        (FACTORS_TS.replace("EU_NORTH_1]", "EU_NORTH_9]"), IMPACT, "AWS_REGIONS.EU_NORTH_9 is not in"),
        (FACTORS_TS, IMPACT.replace(",Doha,", ",Dubai,"), "is not in Doha"),
        (FACTORS_TS, IMPACT.replace(",430,", ",n/a,"), "impact.csv:2: not a number"),
    ],
)
def test_the_build_refuses_inputs_it_does_not_understand(tmp_path, factors, impact, message):
    with pytest.raises(BuildError, match=message):
        build(tmp_path, factors=factors, impact=impact)


def test_the_build_reproduces_the_shipped_file_from_the_real_packages():
    """Set FLEETDECK_CARBON_SOURCES to a folder with the three downloaded packages (see build_carbon's docstring)."""
    folder = Path(os.environ.get("FLEETDECK_CARBON_SOURCES", "/nonexistent"))
    inputs = {
        "codecarbon": folder / "codecarbon-3.3.2-py3-none-any.whl",
        "ccf_aws": folder / "cloud-carbon-footprint-aws-0.15.0.tgz",
        "ccf_core": folder / "cloud-carbon-footprint-core-0.17.3.tgz",
    }
    if not all(path.is_file() for path in inputs.values()):
        pytest.skip(f"the CodeCarbon wheel and CCF tarballs are not in {folder} (FLEETDECK_CARBON_SOURCES)")
    assert carbon_build(**inputs) == (DATA_DIR / "grid_intensity.csv").read_text()


# --- the demo -------------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_demo_gives_on_prem_sites_operator_values_and_dc_sjc1_a_day_with_a_solar_dip():
    from devtools.demo.billing import demo_grid_hours_seed, demo_prices_seed
    from devtools.demo.fleet import demo_fleet_seed

    demo_fleet_seed(nodes=15, seed=5)
    values = dict(Site.objects.filter(provider__kind="onprem").values_list("name", "carbon_g_per_kwh"))
    assert values == {"dc-ams1": D("236.00"), "dc-sjc1": D("198.00")}
    seeded = demo_prices_seed()
    assert (seeded["grid_created"], seeded["pue_created"], seeded["grid_hours"]) == (67, 2, 24)
    now = datetime(2026, 3, 10, 15, tzinfo=UTC)
    assert demo_grid_hours_seed(now=now) == 24
    day = {h.hour.hour: h.g_per_kwh for h in GridIntensityHour.objects.filter(hour__date=date(2026, 3, 9))}
    assert len(day) == 24
    # 198 × (1 − 0.3 cos(2π (local − 13) / 24)), local = UTC − 8: lowest at 21:00 UTC, highest at 09:00 UTC
    assert (min(day, key=day.get), day[21]) == (21, D("138.60"))
    assert (max(day, key=day.get), day[9]) == (9, D("257.40"))
    assert sum(day.values()) / 24 == D("198.00")  # the cycle averages to the operator's value
