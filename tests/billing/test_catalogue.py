"""billing/catalogue.py and billing/data: the shipped catalogue, its build from the fixtures, and loading it."""

from __future__ import annotations

import csv
import shutil
from datetime import date
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from billing.catalogue import DATA_DIR, CatalogueError, catalogue_load
from billing.choices import LocationClass, PriceSource
from billing.data.build_catalogue import BuildError, aws_rows, catalogue_build
from billing.models import EgressRate, InstancePrice, OnPremCostModel
from billing.rates import Location, PriceBook, onprem_gpu_hour_usd
from devtools.demo.billing import demo_prices_seed
from fleet.catalog import GPU_SPECS, INSTANCE_TYPES
from tests.factories import GPUFactory, NodeFactory, OnPremSiteFactory

pytestmark = pytest.mark.django_db


def shipped_rows() -> list[dict[str, str]]:
    with (DATA_DIR / "instance_prices.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def fixture_row(path, **match) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return [r for r in csv.DictReader(handle) if all(r[k] == v for k, v in match.items())]


# --- the shipped files -------------------------------------------------------------------------------------
def test_build_script_reproduces_the_committed_csv_byte_for_byte(shared_fixtures):
    text, skipped = catalogue_build(shared_fixtures)
    assert text == (DATA_DIR / "instance_prices.csv").read_text()
    # What could not be priced is reported, not silently dropped (and the README lists the same).
    assert "gcp us-central1 accelerator 8×H200: no VM row of a machine type that carries it" in skipped
    readme = (DATA_DIR / "README.md").read_text()
    for line in skipped:
        assert line.split(":")[0] in readme, line


def test_shipped_csv_agrees_with_the_fixture_rows_it_was_built_from(shared_fixtures):
    prices = shared_fixtures / "prices"
    rows = {(r["provider_kind"], r["region"], r["instance_type"], r["effective_from"]): r for r in shipped_rows()}

    p5 = rows[("aws", "us-east-1", "p5.48xlarge", "2025-06-01")]
    (upstream,) = fixture_row(
        prices / "aws_vms_v8_gpu_us-east-1_excerpt.csv", InstanceType="p5.48xlarge", Region="us-east-1"
    )
    assert Decimal(p5["on_demand_usd_per_h"]) == Decimal(upstream["Price"]) == Decimal("55.04")
    assert (p5["gpu_model"], p5["gpu_count"]) == ("H100", "8")

    gcp = prices / "gcp_vms_v8_gpu_us-central1_excerpt.csv"
    a2 = rows[("gcp", "us-central1", "a2-highgpu-1g", "2025-03-06")]
    vm = fixture_row(gcp, InstanceType="a2-highgpu-1g", Region="us-central1")[0]
    gpu = fixture_row(gcp, AcceleratorName="A100", AcceleratorCount="1", Region="us-central1")[0]
    assert Decimal(a2["on_demand_usd_per_h"]) == Decimal(vm["Price"]) + Decimal(gpu["Price"]) == Decimal("3.67339")
    assert Decimal(a2["spot_usd_per_h"]) == Decimal(vm["SpotPrice"]) + Decimal(gpu["SpotPrice"])
    assert a2["gpu_model"] == "A100-40GB"

    g2 = rows[("gcp", "us-central1", "g2-standard-4", "2025-03-06")]
    assert Decimal(g2["on_demand_usd_per_h"]) == Decimal("0.70683")
    assert g2["gpu_model"] == "L4"


def test_aws_rules_mean_spot_agreeing_on_demand_and_empty_cells(shared_fixtures):
    rows = {(r["region"], r["instance_type"], r["effective_from"]): r for r in shipped_rows()}
    spots = [
        Decimal(r["SpotPrice"])
        for r in fixture_row(
            shared_fixtures / "prices/aws_vms_v8_gpu_us-east-1_excerpt.csv", InstanceType="g4dn.xlarge"
        )
    ]
    assert len(spots) == 5
    assert Decimal(rows[("us-east-1", "g4dn.xlarge", "2025-06-01")]["spot_usd_per_h"]) == sum(spots) / 5
    assert rows[("us-east-1", "p5.4xlarge", "2025-06-01")]["spot_usd_per_h"] == ""
    assert rows[("us-east-2", "p5e.48xlarge", "2025-06-01")]["on_demand_usd_per_h"] == ""
    # The AWS 'A100' of p4d is the 40 GB part; the catalogue and SkyPilot agree on the GPU of every known type.
    assert rows[("us-east-1", "p4d.24xlarge", "2025-06-01")]["gpu_model"] == "A100-40GB"
    for row in shipped_rows():
        known = INSTANCE_TYPES.get(row["instance_type"])
        if known:
            assert (known.gpu, known.gpu_count) == (row["gpu_model"], int(row["gpu_count"]))
        assert row["gpu_model"] in GPU_SPECS


def test_build_refuses_zones_that_disagree_on_the_on_demand_price(tmp_path, shared_fixtures):
    source = shared_fixtures / "prices/aws_vms_v8_gpu_us-east-1_excerpt.csv"
    lines = source.read_text().splitlines(keepends=True)
    # Change one g5.xlarge AZ's on-demand price.
    lines = [lines[0]] + [
        line.replace(",1.006,0.424600,", ",1.106,0.424600,") if "use1-az2" in line else line for line in lines[1:]
    ]
    broken = tmp_path / "aws.csv"
    broken.write_text("".join(lines))
    with pytest.raises(BuildError, match="g5.xlarge: the zones disagree on the on-demand price"):
        aws_rows(broken)


def test_price_history_of_the_june_2025_cut_is_in_the_catalogue():
    rows = [r for r in shipped_rows() if r["region"] == "us-east-1" and r["instance_type"] == "p5.48xlarge"]
    assert [(r["effective_from"], r["on_demand_usd_per_h"]) for r in rows] == [
        ("2024-01-01", "98.32"),
        ("2025-06-01", "55.04"),
    ]
    p4d = [r for r in shipped_rows() if r["region"] == "us-east-1" and r["instance_type"] == "p4d.24xlarge"]
    assert [r["on_demand_usd_per_h"] for r in p4d] == ["32.7726", "21.957642"]


# --- loading ----------------------------------------------------------------------------------------------
def test_load_creates_every_row_and_reloading_changes_nothing():
    report = catalogue_load()
    assert report.prices_created == len(shipped_rows()) == InstancePrice.objects.count()
    assert report.egress_created == EgressRate.objects.count() > 20
    again = catalogue_load()
    assert (again.prices_created, again.prices_updated, again.prices_unchanged) == (0, 0, report.prices_created)
    assert (again.egress_created, again.egress_updated) == (0, 0)
    assert InstancePrice.objects.filter(source=PriceSource.CATALOGUE).count() == report.prices_created


def test_loaded_prices_serve_the_price_book_before_and_after_the_cut():
    from datetime import date

    catalogue_load()
    kwargs = {"provider_kind": "aws", "region": "us-east-1", "instance_type": "p5.48xlarge", "spot": False}
    assert PriceBook.load(day=date(2025, 5, 31)).instance_usd_per_h(**kwargs) == Decimal("98.32")
    assert PriceBook.load(day=date(2025, 6, 1)).instance_usd_per_h(**kwargs) == Decimal("55.04")


def copy_data(tmp_path):
    for name in ("instance_prices.csv", "egress_rates.csv"):
        shutil.copy(DATA_DIR / name, tmp_path / name)
    return tmp_path


def test_a_changed_figure_updates_the_catalogue_row_but_never_an_override(tmp_path):
    catalogue_load()
    override = InstancePrice.objects.create(
        provider_kind="aws",
        region="us-east-1",
        instance_type="p5.48xlarge",
        gpu_model="H100",
        gpu_count=8,
        on_demand_usd_per_h=Decimal("40"),
        effective_from="2025-06-01",
        source=PriceSource.OVERRIDE,
    )
    folder = copy_data(tmp_path)
    path = folder / "instance_prices.csv"
    path.write_text(path.read_text().replace(",55.04,10.2397,", ",54.00,10.2397,"))
    report = catalogue_load(path=folder)
    assert (report.prices_created, report.prices_updated) == (0, 1)
    catalogue_row = InstancePrice.objects.get(
        instance_type="p5.48xlarge", region="us-east-1", effective_from="2025-06-01", source=PriceSource.CATALOGUE
    )
    assert catalogue_row.on_demand_usd_per_h == Decimal("54")
    override.refresh_from_db()
    assert override.on_demand_usd_per_h == Decimal("40")


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        ("instance_prices.csv", ",55.04,", ",fifty,", "instance_prices.csv:12: on_demand_usd_per_h: not a number"),
        ("instance_prices.csv", ",55.04,", ",-55.04,", "instance_prices.csv:12: on_demand_usd_per_h: must be"),
        (
            "instance_prices.csv",
            "p5.48xlarge,H100,8,55.04",
            "p5.48xlarge,H100-PCIe,8,55.04",
            "instance_prices.csv:12: gpu_model: unknown GPU model (catalogue key) 'H100-PCIe'",
        ),
        (
            "instance_prices.csv",
            "aws,eu-west-2,",
            "azure,eu-west-2,",
            "instance_prices.csv:3: provider_kind: unknown cloud provider kind 'azure'",
        ),
        (
            "instance_prices.csv",
            "aws,eu-west-2,",
            "onprem,eu-west-2,",
            "instance_prices.csv:3: provider_kind: unknown cloud provider kind 'onprem'",
        ),
        (
            "instance_prices.csv",
            ",55.04,10.2397,2025-06-01",
            ",,,2025-06-01",
            "instance_prices.csv:12: on_demand_usd_per_h: give an on-demand or a spot price",
        ),
        (
            "instance_prices.csv",
            ",55.04,10.2397,2025-06-01",
            ",55.04,10.2397,2025-13-01",
            "instance_prices.csv:12: effective_from: not a YYYY-MM-DD date",
        ),
        (
            "egress_rates.csv",
            "aws,same-zone,",
            "aws,next-door,",
            "egress_rates.csv:2: location_class: unknown location class 'next-door'",
        ),
        (
            "egress_rates.csv",
            "gcp,same-zone,0,0,",
            "gcp,same-zone,0,0.1.2,",
            "egress_rates.csv:16: usd_per_gb: not a number",
        ),
        (
            "egress_rates.csv",
            "gcp,same-zone,",
            "ibm,same-zone,",
            "egress_rates.csv:16: provider_kind: unknown provider kind 'ibm'",
        ),
    ],
)
def test_bad_rows_are_refused_naming_file_line_and_column_and_nothing_is_written(tmp_path, file, old, new, message):
    folder = copy_data(tmp_path)
    path = folder / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(CatalogueError) as caught:
        catalogue_load(path=folder)
    assert message in str(caught.value)
    assert InstancePrice.objects.count() == 0
    assert EgressRate.objects.count() == 0


def test_a_wrong_header_and_a_missing_file_are_clear_errors(tmp_path):
    folder = copy_data(tmp_path)
    (folder / "egress_rates.csv").write_text("kind,class\naws,same-zone\n")
    with pytest.raises(CatalogueError, match="egress_rates.csv:1: expected the columns provider_kind"):
        catalogue_load(path=folder)
    (folder / "egress_rates.csv").unlink()
    with pytest.raises(CatalogueError, match="egress_rates.csv: file not found"):
        catalogue_load(path=folder)


def test_load_prices_command_prints_counts_and_fails_cleanly(tmp_path, capsys):
    call_command("load_prices")
    out = capsys.readouterr().out
    assert f"instance prices: {len(shipped_rows())} created, 0 updated, 0 unchanged" in out
    call_command("load_prices")
    assert f"0 created, 0 updated, {len(shipped_rows())} unchanged" in capsys.readouterr().out
    folder = copy_data(tmp_path)
    (folder / "instance_prices.csv").write_text((DATA_DIR / "instance_prices.csv").read_text() + "aws,x\n")
    bad_line = len(shipped_rows()) + 2  # after the header and every shipped row
    with pytest.raises(CommandError, match=f"instance_prices.csv:{bad_line}"):
        call_command("load_prices", "--path", str(folder))


def test_egress_defaults_cover_every_class_of_every_provider_kind():
    catalogue_load()
    for kind in ("aws", "gcp", "onprem"):
        classes = set(EgressRate.objects.filter(provider_kind=kind).values_list("location_class", flat=True))
        assert classes == set(LocationClass.values), kind
    assert not EgressRate.objects.filter(location_class=LocationClass.SAME_ZONE).exclude(usd_per_gb=0).exists()
    assert set(EgressRate.objects.filter(provider_kind="onprem").values_list("usd_per_gb", flat=True)) == {0}


# --- demo ------------------------------------------------------------------------------------------------
def test_demo_prices_seed_gives_demo_onprem_sites_plausible_cost_models():
    site = OnPremSiteFactory(name="dc-ams1")
    h100 = NodeFactory(site=site, instance_type="dgx-h100", lifecycle="owned", external_id="")
    GPUFactory.create_batch(8, node=h100)
    l40s = NodeFactory(site=site, instance_type="l40s-4x", lifecycle="owned", external_id="")
    GPUFactory.create_batch(4, node=l40s, model=GPU_SPECS["L40S"].nvml_name)
    result = demo_prices_seed()
    assert result["prices_created"] == len(shipped_rows())
    assert result["cost_models_created"] == 5  # four server shapes + a site-wide fallback
    assert demo_prices_seed()["cost_models_created"] == 0
    rate = onprem_gpu_hour_usd(node=h100, day=date(2026, 1, 1))
    # $300k / 8 GPUs over 48 months + 10 % of that per year: ≈ $1.50 per GPU-hour.
    assert Decimal("1.49") < rate < Decimal("1.51")
    assert onprem_gpu_hour_usd(node=l40s, day=date(2026, 1, 1)) < rate
    assert OnPremCostModel.objects.filter(site=site, gpu_model="").count() == 1
    assert Location.from_site(site).key == "onprem:dc-ams1"


def test_demo_price_estimates_price_every_demo_cloud_node_and_say_so():
    from billing.models import InstancePrice
    from billing.rates import PriceBook
    from devtools.demo.fleet import demo_fleet_seed
    from fleet.models import Node

    demo_fleet_seed(nodes=120, seed=3)
    demo_prices_seed()
    book = PriceBook.load(day=date(2026, 11, 1))
    cloud = Node.objects.exclude(site__provider__kind="onprem").select_related("site__provider")
    assert cloud.exists()
    for node in cloud:
        for spot in (False, True):
            price = book.instance_usd_per_h(
                provider_kind=node.site.provider.kind,
                region=node.site.region,
                instance_type=node.instance_type,
                spot=spot,
            )
            assert price is not None and price > 0, (node.site.region, node.instance_type, spot)
    estimates = InstancePrice.objects.filter(source="override")
    assert estimates.exists()
    assert all(p.note.startswith("Demo estimate, not a published price:") for p in estimates)
    # g6e.xlarge (L40S) is priced nowhere in the fixtures: the documented list price, × 1.00 in us-west-2.
    g6e = estimates.get(region="us-west-2", instance_type="g6e.xlarge")
    assert g6e.on_demand_usd_per_h == Decimal("1.861000")
    assert demo_prices_seed()["demo_price_estimates"] == 0  # idempotent


def test_machine_types_skypilot_cannot_price_come_from_cyclenerd():
    rows = {(r["region"], r["instance_type"]): r for r in shipped_rows() if r["provider_kind"] == "gcp"}
    a3 = rows[("us-central1", "a3-highgpu-8g")]
    assert (a3["gpu_model"], a3["gpu_count"]) == ("H100", "8")
    assert (Decimal(a3["on_demand_usd_per_h"]), Decimal(a3["spot_usd_per_h"])) == (
        Decimal("88.49"),
        Decimal("35.39575"),
    )
    assert "Cyclenerd" in a3["note"]
    # SkyPilot's split price wins where it exists (Cyclenerd's a3-highgpu-1g figure includes local SSD).
    assert "SkyPilot" in rows[("us-central1", "a3-highgpu-1g")]["note"]
