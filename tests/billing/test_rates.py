"""billing/rates.py: locations and their classes, egress tiers, the price book, discounts, on-prem cost models."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from billing.catalogue import catalogue_load
from billing.choices import LocationClass, PriceSource, PurchaseOption
from billing.models import Discount, EgressRate, InstancePrice, OnPremCostModel
from billing.rates import (
    INTERNET,
    EgressRateMissing,
    EgressTariff,
    Location,
    Offer,
    PriceBook,
    energy_usd_per_kwh,
    location_class,
    onprem_gpu_hour_usd,
    onprem_rates,
    region_continent,
)
from fleet.catalog import GPU_SPECS
from tests.factories import GPUFactory, NodeFactory, OnPremSiteFactory, ProviderFactory, SiteFactory

TB = 10**12
GB = 10**9
DAY = date(2026, 1, 15)
USE1A = Location("aws", "us-east-1", "us-east-1a")
USE1B = Location("aws", "us-east-1", "us-east-1b")
USW2 = Location("aws", "us-west-2", "us-west-2b")
EUW1 = Location("aws", "eu-west-1", "eu-west-1a")
USC1 = Location("gcp", "us-central1", "us-central1-a")
DC1 = Location("onprem", "dc-ams1", continent="europe")


# --- locations --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "region", "continent"),
    [
        ("aws", "us-east-1", "north-america"),
        ("aws", "ca-central-1", "north-america"),
        ("aws", "eu-west-1", "europe"),
        ("aws", "ap-northeast-1", "asia"),
        ("aws", "ap-southeast-2", "oceania"),
        ("aws", "sa-east-1", "south-america"),
        ("aws", "me-south-1", "middle-east"),
        ("aws", "af-south-1", "africa"),
        ("gcp", "us-central1", "north-america"),
        ("gcp", "northamerica-northeast1", "north-america"),
        ("gcp", "europe-west4", "europe"),
        ("gcp", "asia-east1", "asia"),
        ("gcp", "australia-southeast1", "oceania"),
        ("gcp", "southamerica-east1", "south-america"),
        ("gcp", "mars-north1", ""),
        ("onprem", "us-dc", ""),
    ],
)
def test_region_continent(kind, region, continent):
    assert region_continent(kind, region) == continent


def test_location_derives_its_continent_and_key():
    assert USE1A.continent == "north-america"
    assert USE1A.key == "aws:us-east-1"
    assert DC1.key == "onprem:dc-ams1"
    assert Location("gcp", "europe-west4", continent="asia").continent == "asia"  # given wins


@pytest.mark.django_db
def test_location_from_site_cloud_and_onprem():
    cloud = SiteFactory(region="us-west-2", zone="us-west-2b", continent="north-america")
    assert Location.from_site(cloud) == Location("aws", "us-west-2", "us-west-2b", "north-america")
    onprem = OnPremSiteFactory(name="dc-ams1", zone="hall-a")
    assert Location.from_site(onprem) == Location("onprem", "dc-ams1", "hall-a", "europe")


@pytest.mark.parametrize(
    ("src", "dst", "expected"),
    [
        (USE1A, USE1A, LocationClass.SAME_ZONE),
        (Location("aws", "us-east-1"), Location("aws", "us-east-1"), LocationClass.SAME_ZONE),  # identical
        (USE1A, USE1B, LocationClass.SAME_REGION),
        (USE1A, Location("aws", "us-east-1"), LocationClass.SAME_REGION),  # unknown zone: maybe another one
        (USE1A, USW2, LocationClass.SAME_CONTINENT),
        (USE1A, EUW1, LocationClass.OTHER_CONTINENT),
        (Location("aws", "us-east-1"), Location("aws", "xx-unknown-1"), LocationClass.OTHER_CONTINENT),
        (USE1A, USC1, LocationClass.OTHER_CLOUD),
        (USE1A, INTERNET, LocationClass.INTERNET),
        (DC1, INTERNET, LocationClass.INTERNET),
        (USC1, USE1A, LocationClass.OTHER_CLOUD),
        (USE1A, DC1, LocationClass.OTHER_CLOUD),
        (DC1, USC1, LocationClass.OTHER_CLOUD),
        (DC1, Location("onprem", "dc-fra1", continent="europe"), LocationClass.SAME_CONTINENT),
        (DC1, Location("onprem", "dc-sjc1", continent="north-america"), LocationClass.OTHER_CONTINENT),
        (Location("gcp", "us-central1", "us-central1-a"), Location("gcp", "us-east4"), LocationClass.SAME_CONTINENT),
    ],
)
def test_location_class_for_all_pairs(src, dst, expected):
    assert location_class(src, dst) == expected


# --- egress -----------------------------------------------------------------------------------------------
@pytest.fixture
def tariff(db) -> EgressTariff:
    catalogue_load()
    return EgressTariff.load(day=DAY)


def test_aws_internet_tiers_2_tb_is_100_gb_free_plus_1900_gb_at_9_cents(tariff):
    internet = INTERNET
    assert tariff.usd(USE1A, internet, 2 * TB) == Decimal("171.00")
    assert tariff.usd(USE1A, internet, 100 * GB) == 0
    assert tariff.usd(USE1A, internet, 101 * GB) == Decimal("0.09")


def test_aws_internet_tiers_across_every_boundary(tariff):
    internet = INTERNET
    # 200 TB: 100 GB free, 9,900 GB × 0.09, 40,000 × 0.085, 100,000 × 0.07, 50,000 × 0.05.
    expected = (
        Decimal(9900) * Decimal("0.09") + 40000 * Decimal("0.085") + 100000 * Decimal("0.07") + 50000 * Decimal("0.05")
    )
    assert tariff.usd(USE1A, internet, 200 * TB) == expected == Decimal("13791")
    # Bytes, not whole GB: half a GB past the free tier.
    assert tariff.usd(USE1A, internet, 100 * GB + GB // 2) == Decimal("0.045")


def test_egress_by_class_is_charged_by_the_source(tariff):
    assert tariff.usd(USE1A, USE1A, 5 * TB) == 0
    assert tariff.usd(USE1A, USE1B, 1 * TB) == Decimal("20.00")  # $0.01 out + $0.01 in
    assert tariff.usd(USE1A, USW2, 1 * TB) == Decimal("20.00")
    # AWS → GCP is internet-priced by AWS; GCP → AWS by GCP, in GiB-converted tiers.
    assert tariff.usd(USE1A, USC1, 1 * TB) == Decimal("81.00")
    assert tariff.usd(USC1, USE1A, 1 * TB) == Decimal("111.759")
    assert tariff.usd(USC1, USE1A, 2 * TB) == Decimal("1100") * Decimal("0.111759") + Decimal("900") * Decimal(
        "0.102445"
    )
    # On-prem uplinks are a fixed cost: moving data out of a data centre is $0 per GB by default.
    assert tariff.usd(DC1, USE1A, 10 * TB) == 0
    assert tariff.usd(USE1A, DC1, 1 * TB) == Decimal("81.00")
    assert tariff.usd(USE1A, USW2, 0) == 0


def test_usd_per_gb_is_the_first_tier_rate(tariff):
    assert tariff.usd_per_gb(USE1A, USW2) == Decimal("0.02")
    assert tariff.usd_per_gb(USC1, USE1A) == Decimal("0.111759")
    assert tariff.usd_per_gb(USE1A, USC1) == 0  # the first 100 GB are free
    assert tariff.usd_per_gb(USE1A, USE1A) == 0


@pytest.mark.django_db
def test_a_newer_rate_replaces_all_tiers_of_its_class_from_its_day(django_assert_num_queries):
    catalogue_load()
    EgressRate.objects.create(
        provider_kind="aws", location_class="internet", tier_start_gb=0, usd_per_gb="0.05", effective_from=DAY
    )
    internet = INTERNET
    before = EgressTariff.load(day=date(2026, 1, 14))
    with django_assert_num_queries(1):
        after = EgressTariff.load(day=DAY)
    assert before.usd(USE1A, internet, 2 * TB) == Decimal("171.00")
    assert after.usd(USE1A, internet, 2 * TB) == Decimal("100.00")  # one flat tier, no free 100 GB any more
    assert after.tiers("aws", "internet") == [(0, Decimal("0.05"))]


@pytest.mark.django_db
def test_missing_rate_is_a_clear_error_not_a_silent_zero():
    tariff = EgressTariff.load(day=DAY)
    with pytest.raises(EgressRateMissing, match="no aws egress rate for same-continent in force on 2026-01-15"):
        tariff.usd(USE1A, USW2, GB)
    assert tariff.usd(USE1A, USE1A, GB) == 0  # identical locations need no rate


# --- price book -------------------------------------------------------------------------------------------
def price(**kwargs) -> InstancePrice:
    defaults = {
        "provider_kind": "aws",
        "region": "us-east-1",
        "instance_type": "p5.48xlarge",
        "gpu_model": "H100",
        "gpu_count": 8,
        "on_demand_usd_per_h": Decimal("55.04"),
        "spot_usd_per_h": Decimal("10.2397"),
        "effective_from": date(2025, 6, 1),
        "source": PriceSource.CATALOGUE,
    }
    return InstancePrice.objects.create(**{**defaults, **kwargs})


P5 = {"provider_kind": "aws", "region": "us-east-1", "instance_type": "p5.48xlarge"}


@pytest.mark.django_db
def test_a_price_change_old_price_before_the_day_new_from_it():
    price(on_demand_usd_per_h=Decimal("98.32"), spot_usd_per_h=None, effective_from=date(2024, 1, 1))
    price()
    assert PriceBook.load(day=date(2023, 12, 31)).instance_usd_per_h(**P5, spot=False) is None
    assert PriceBook.load(day=date(2024, 1, 1)).instance_usd_per_h(**P5, spot=False) == Decimal("98.32")
    assert PriceBook.load(day=date(2025, 5, 31)).instance_usd_per_h(**P5, spot=False) == Decimal("98.32")
    assert PriceBook.load(day=date(2025, 5, 31)).instance_usd_per_h(**P5, spot=True) is None
    assert PriceBook.load(day=date(2025, 6, 1)).instance_usd_per_h(**P5, spot=False) == Decimal("55.04")
    assert PriceBook.load(day=date(2025, 6, 1)).instance_usd_per_h(**P5, spot=True) == Decimal("10.2397")


@pytest.mark.django_db
def test_override_precedence():
    price(effective_from=date(2025, 6, 1))
    override = price(
        on_demand_usd_per_h=Decimal("40"),
        spot_usd_per_h=None,
        effective_from=date(2025, 7, 1),
        source=PriceSource.OVERRIDE,
    )
    price(on_demand_usd_per_h=Decimal("50"), effective_from=date(2025, 8, 1), source=PriceSource.AWS_PRICE_LIST)
    book = lambda day: PriceBook.load(day=day)  # noqa: E731
    assert book(date(2025, 6, 30)).instance_usd_per_h(**P5, spot=False) == Decimal("55.04")
    # From its day, an override wins even over a newer row from another source...
    assert book(date(2025, 9, 1)).instance_usd_per_h(**P5, spot=False) == Decimal("40")
    # ...and its empty spot price means no spot price (the override row is the price).
    assert book(date(2025, 9, 1)).instance_usd_per_h(**P5, spot=True) is None
    # The latest override wins among overrides.
    price(on_demand_usd_per_h=Decimal("42"), effective_from=date(2025, 8, 15), source=PriceSource.OVERRIDE)
    assert book(date(2025, 8, 14)).price(**P5).pk == override.pk
    assert book(date(2025, 9, 1)).instance_usd_per_h(**P5, spot=False) == Decimal("42")


@pytest.mark.django_db
def test_same_day_price_list_beats_catalogue():
    price()
    price(on_demand_usd_per_h=Decimal("55.5"), source=PriceSource.AWS_PRICE_LIST)
    assert PriceBook.load(day=DAY).instance_usd_per_h(**P5, spot=False) == Decimal("55.5")


@pytest.mark.django_db
def test_discounts_by_purchase_option_and_period():
    price()
    provider = ProviderFactory()
    other = ProviderFactory()
    Discount.objects.create(
        provider=provider, percent=10, applies_to=PurchaseOption.ALL, effective_from=date(2025, 1, 1)
    )
    Discount.objects.create(
        provider=provider,
        percent=25,
        applies_to=PurchaseOption.ON_DEMAND,
        effective_from=date(2025, 7, 1),
        effective_to=date(2025, 12, 31),
    )
    book = PriceBook.load(day=date(2025, 6, 15))
    assert book.instance_usd_per_h(**P5, spot=False, provider=provider) == Decimal("49.536")  # −10 %
    assert book.instance_usd_per_h(**P5, spot=True, provider=provider) == Decimal("9.21573")  # −10 %
    assert book.instance_usd_per_h(**P5, spot=False, provider=other) == Decimal("55.04")
    assert book.instance_usd_per_h(**P5, spot=False) == Decimal("55.04")  # no account: list price
    book = PriceBook.load(day=date(2025, 12, 31))
    assert book.instance_usd_per_h(**P5, spot=False, provider=provider.pk) == Decimal("41.28")  # on-demand −25 %
    assert book.instance_usd_per_h(**P5, spot=True, provider=provider) == Decimal("9.21573")  # spot still −10 %
    book = PriceBook.load(day=date(2026, 1, 1))  # the on-demand discount has ended
    assert book.instance_usd_per_h(**P5, spot=False, provider=provider) == Decimal("49.536")
    Discount.objects.create(
        provider=provider, percent=60, applies_to=PurchaseOption.SPOT, effective_from=date(2026, 1, 1)
    )
    assert PriceBook.load(day=date(2026, 1, 1)).instance_usd_per_h(**P5, spot=True, provider=provider) == Decimal(
        "4.09588"
    )


@pytest.mark.django_db
def test_unknown_instance_type_or_missing_purchase_option_is_none():
    price(spot_usd_per_h=None)
    book = PriceBook.load(day=DAY)
    assert book.instance_usd_per_h(**P5, spot=True) is None
    assert book.instance_usd_per_h(**{**P5, "instance_type": "p9.nope"}, spot=False) is None
    assert book.instance_usd_per_h(**{**P5, "region": "us-west-2"}, spot=False) is None


@pytest.mark.django_db
def test_offers_are_the_prices_in_force_before_discounts_sorted(django_assert_num_queries):
    catalogue_load()
    provider = ProviderFactory()
    Discount.objects.create(provider=provider, percent=50, effective_from=date(2024, 1, 1))
    with django_assert_num_queries(2):
        book = PriceBook.load(day=DAY)
    offers = book.offers()
    assert offers == sorted(offers, key=lambda o: (o.provider_kind, o.region, o.instance_type))
    assert (
        len({(o.provider_kind, o.region, o.instance_type) for o in offers}) == len(offers) == 23
    )  # 25 rows, two of them history
    p5 = next(o for o in offers if (o.region, o.instance_type) == ("us-east-1", "p5.48xlarge"))
    assert p5 == Offer("aws", "us-east-1", "p5.48xlarge", "H100", 8, Decimal("55.04"), Decimal("10.2397"))
    a2 = next(o for o in offers if o.instance_type == "a2-highgpu-1g")
    assert (a2.gpu_model, a2.on_demand_usd_per_h) == ("A100-40GB", Decimal("3.67339"))


@pytest.mark.django_db
def test_price_book_load_query_count_does_not_grow(django_assert_num_queries):
    catalogue_load()
    for n in range(5):
        Discount.objects.create(provider=ProviderFactory(), percent=n, effective_from=date(2025, 1, 1))
    with django_assert_num_queries(2):
        book = PriceBook.load(day=DAY)
    provider_id = Discount.objects.order_by("pk").last().provider_id
    with django_assert_num_queries(0):
        book.offers()
        assert book.instance_usd_per_h(**P5, spot=False, provider=provider_id) == Decimal("52.8384")  # −4 %


# --- on-prem ----------------------------------------------------------------------------------------------
H100 = GPU_SPECS["H100"].nvml_name
L40S = GPU_SPECS["L40S"].nvml_name


def owned_node(site, model=H100, gpus=8):
    node = NodeFactory(site=site, external_id="", instance_type="dgx-h100", lifecycle="owned")
    GPUFactory.create_batch(gpus, node=node, model=model)
    return node


def cost(**kwargs) -> OnPremCostModel:
    defaults = {
        "purchase_usd_per_gpu": Decimal("37500"),
        "amortisation_months": 48,
        "ops_usd_per_gpu_year": Decimal("3750"),
        "effective_from": date(2025, 1, 1),
    }
    return OnPremCostModel.objects.create(**{**defaults, **kwargs})


@pytest.mark.django_db
def test_onprem_lookup_order_node_then_site_model_then_site_any():
    site = OnPremSiteFactory()
    h100, l40s, plain = owned_node(site), owned_node(site, L40S, 4), owned_node(site, "NVIDIA RTX 6000 Ada", 2)
    any_gpu = cost(site=site, purchase_usd_per_gpu=Decimal("20000"), ops_usd_per_gpu_year=Decimal("2000"))
    assert onprem_gpu_hour_usd(node=h100, day=DAY) == any_gpu.usd_per_gpu_hour
    for_h100 = cost(site=site, gpu_model=H100)
    assert onprem_gpu_hour_usd(node=h100, day=DAY) == for_h100.usd_per_gpu_hour
    assert onprem_gpu_hour_usd(node=l40s, day=DAY) == any_gpu.usd_per_gpu_hour
    own = cost(node=h100, purchase_usd_per_gpu=Decimal("30000"))
    assert onprem_gpu_hour_usd(node=h100, day=DAY) == own.usd_per_gpu_hour
    assert onprem_gpu_hour_usd(node=plain, day=DAY) == any_gpu.usd_per_gpu_hour
    # $37,500 over 48 months of 730 h + $3,750 over 8,760 h.
    assert for_h100.usd_per_gpu_hour.quantize(Decimal("0.0001")) == Decimal("1.4983")
    assert onprem_gpu_hour_usd(node=h100, day=date(2024, 12, 31)) is None  # nothing in force yet


@pytest.mark.django_db
def test_onprem_latest_model_in_force_wins_and_past_stays_past():
    site = OnPremSiteFactory()
    node = owned_node(site)
    old = cost(site=site, effective_from=date(2025, 1, 1))
    new = cost(site=site, purchase_usd_per_gpu=Decimal("30000"), effective_from=date(2026, 1, 1))
    assert onprem_gpu_hour_usd(node=node, day=date(2025, 12, 31)) == old.usd_per_gpu_hour
    assert onprem_gpu_hour_usd(node=node, day=date(2026, 1, 1)) == new.usd_per_gpu_hour
    assert new.usd_per_gpu_hour < old.usd_per_gpu_hour
    # Another site's model never applies.
    other = OnPremSiteFactory()
    assert onprem_gpu_hour_usd(node=owned_node(other), day=DAY) is None


@pytest.mark.django_db
def test_onprem_rates_for_many_nodes_in_constant_queries(django_assert_num_queries):
    sites = [OnPremSiteFactory() for _ in range(3)]
    nodes = [owned_node(site, model) for site in sites for model in (H100, L40S)]
    for site in sites:
        cost(site=site)
        cost(site=site, gpu_model=L40S, purchase_usd_per_gpu=Decimal("15000"))
    cost(node=nodes[0], purchase_usd_per_gpu=Decimal("1000"))
    with django_assert_num_queries(2):
        rates = onprem_rates(nodes=nodes, day=DAY)
    assert set(rates) == {n.pk for n in nodes}
    assert rates[nodes[0].pk] < rates[nodes[2].pk]  # its own cheap model
    assert rates[nodes[1].pk] == rates[nodes[3].pk] < rates[nodes[2].pk]  # L40S model per site
    more = nodes + [owned_node(site) for site in sites for _ in range(3)]
    with django_assert_num_queries(2):
        assert len(onprem_rates(nodes=more, day=DAY)) == len(more)
    with django_assert_num_queries(0):
        assert onprem_rates(nodes=[], day=DAY) == {}


@pytest.mark.django_db
def test_energy_usd_per_kwh_onprem_is_price_times_pue_cloud_is_zero():
    onprem = OnPremSiteFactory(electricity_usd_per_kwh=Decimal("0.21"), pue=Decimal("1.35"))
    assert energy_usd_per_kwh(onprem) == Decimal("0.2835")
    assert energy_usd_per_kwh(SiteFactory()) == 0
