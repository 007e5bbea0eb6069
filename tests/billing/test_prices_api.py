"""The prices API (billing/api/prices.py): generic resource tests plus filters and computed fields."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from itertools import count

import pytest
from django.urls import reverse

from billing.catalogue import catalogue_load
from billing.choices import PriceSource
from billing.models import Discount, EgressRate, InstancePrice, OnPremCostModel
from fleet.catalog import GPU_SPECS
from tests.api_base import APIResourceTests
from tests.factories import NodeFactory, OnPremProviderFactory, OnPremSiteFactory, ProviderFactory, SiteFactory

_n = count()
H100 = GPU_SPECS["H100"].nvml_name


def make_price(**kwargs) -> InstancePrice:
    defaults = {
        "provider_kind": "aws",
        "region": "us-east-1",
        "instance_type": f"p5.{next(_n)}xlarge",
        "gpu_model": "H100",
        "gpu_count": 8,
        "on_demand_usd_per_h": Decimal("55.04"),
        "spot_usd_per_h": Decimal("10.2397"),
        "effective_from": date(2025, 6, 1),
        "source": PriceSource.CATALOGUE,
    }
    return InstancePrice.objects.create(**{**defaults, **kwargs})


class TestInstancePriceAPI(APIResourceTests):
    basename = "price"
    model = InstancePrice
    compare_fields = ("provider_kind", "region", "instance_type", "gpu_model", "gpu_count", "effective_from")
    bad_payloads = [
        ({"on_demand_usd_per_h": "-1.00"}, "on_demand_usd_per_h"),
        ({"spot_usd_per_h": "-0.5"}, "spot_usd_per_h"),
        ({"on_demand_usd_per_h": None, "spot_usd_per_h": None}, "on_demand_usd_per_h"),
        ({"on_demand_usd_per_h": "cheap"}, "on_demand_usd_per_h"),
        ({"provider_kind": "onprem"}, "provider_kind"),
        ({"provider_kind": "azure"}, "provider_kind"),
        ({"gpu_model": "NVIDIA H100 80GB HBM3"}, "gpu_model"),
        ({"gpu_count": 0}, "gpu_count"),
        ({"effective_from": "2025-13-01"}, "effective_from"),
        ({"instance_type": ""}, "instance_type"),
    ]

    def make(self, **kwargs):
        return make_price(**kwargs)

    def create_payload(self):
        return {
            "provider_kind": "aws",
            "region": "us-east-1",
            "instance_type": "p5.48xlarge",
            "gpu_model": "H100",
            "gpu_count": 8,
            "on_demand_usd_per_h": "40.000000",
            "spot_usd_per_h": None,
            "effective_from": "2025-07-01",
            "note": "EDP private pricing",
        }

    def update_payload(self, instance):
        return {"note": "checked against the invoice", "spot_usd_per_h": "9.500000"}


@pytest.mark.django_db
def test_an_api_price_is_an_override_and_wins_from_its_day(admin_api):
    catalogue_load()
    payload = TestInstancePriceAPI().create_payload()
    response = admin_api.post(reverse("api:price-list"), payload, format="json")
    assert response.status_code == 201, response.content
    assert response.data["source"] == PriceSource.OVERRIDE
    # The source cannot be forged.
    forged = admin_api.post(
        reverse("api:price-list"), {**payload, "effective_from": "2025-08-01", "source": "catalogue"}, format="json"
    )
    assert forged.data["source"] == PriceSource.OVERRIDE
    # A second override for the same type and day conflicts with a field-level message, not a 500.
    again = admin_api.post(reverse("api:price-list"), payload, format="json")
    assert again.status_code == 400
    assert "non_field_errors" in again.data


@pytest.mark.django_db
def test_at_filter_lists_the_prices_in_force_on_a_day(admin_api):
    catalogue_load()
    url = reverse("api:price-list")
    before = admin_api.get(url, {"at": "2025-05-31", "instance_type": "p5.48xlarge", "region": "us-east-1"})
    assert [row["on_demand_usd_per_h"] for row in before.data["results"]] == ["98.320000"]
    after = admin_api.get(url, {"at": "2025-06-01", "instance_type": "p5.48xlarge", "region": "us-east-1"})
    assert [row["on_demand_usd_per_h"] for row in after.data["results"]] == ["55.040000"]
    everything = admin_api.get(url, {"at": "2026-01-01", "page_size": 1000})
    assert everything.data["count"] == 23  # one row per (kind, region, type): the two history rows drop out
    assert admin_api.get(url, {"at": "2023-01-01"}).data["count"] == 0
    bad = admin_api.get(url, {"at": "yesterday"})
    assert bad.status_code == 400
    assert "at" in bad.data


@pytest.mark.django_db
def test_price_filters_and_ordering(admin_api):
    catalogue_load()
    url = reverse("api:price-list")
    gcp = admin_api.get(url, {"provider_kind": "gcp", "ordering": "-on_demand_usd_per_h"}).data["results"]
    assert [r["instance_type"] for r in gcp][:3] == ["a3-highgpu-8g", "a3-edgegpu-8g", "a2-highgpu-8g"]
    assert {r["provider_kind"] for r in gcp} == {"gcp"}
    assert admin_api.get(url, {"gpu_model": "L4"}).data["count"] == 2
    assert admin_api.get(url, {"source": "override"}).data["count"] == 0
    assert admin_api.get(url, {"source": "catalogue"}).data["count"] == 25
    assert admin_api.get(url, {"provider_kind": "onprem"}).status_code == 400


class TestDiscountAPI(APIResourceTests):
    basename = "discount"
    model = Discount
    compare_fields = ("percent", "applies_to", "effective_from", "effective_to", "note")

    @property
    def bad_payloads(self):
        return [
            ({"percent": "150"}, "percent"),
            ({"percent": "-5"}, "percent"),
            ({"applies_to": "reserved"}, "applies_to"),
            ({"effective_from": "2025-06-01", "effective_to": "2025-05-31"}, "effective_to"),
            ({"provider": OnPremProviderFactory().pk}, "provider"),
            ({"provider": 987654}, "provider"),
        ]

    def make(self, **kwargs):
        return Discount.objects.create(
            **{"provider": ProviderFactory(), "percent": Decimal("10"), "effective_from": date(2025, 1, 1), **kwargs}
        )

    def create_payload(self):
        return {
            "provider": ProviderFactory().pk,
            "percent": "12.50",
            "applies_to": "on-demand",
            "effective_from": "2025-01-01",
            "effective_to": "2025-12-31",
            "note": "EDP",
        }

    def update_payload(self, instance):
        return {"percent": "15.00", "effective_to": "2026-12-31"}


@pytest.mark.django_db
def test_discount_lists_name_the_provider(admin_api):
    discount = TestDiscountAPI().make()
    row = admin_api.get(reverse("api:discount-detail", kwargs={"pk": discount.pk})).data
    assert row["provider_name"] == discount.provider.name


class TestOnPremCostModelAPI(APIResourceTests):
    basename = "onprem-cost-model"
    model = OnPremCostModel
    compare_fields = ("gpu_model", "purchase_usd_per_gpu", "amortisation_months", "effective_from")

    @property
    def bad_payloads(self):
        onprem_node = NodeFactory(site=OnPremSiteFactory(), external_id="", lifecycle="owned")
        return [
            ({"purchase_usd_per_gpu": "-1.00"}, "purchase_usd_per_gpu"),
            ({"ops_usd_per_gpu_year": "-1.00"}, "ops_usd_per_gpu_year"),
            ({"amortisation_months": 0}, "amortisation_months"),
            ({"amortisation_months": 600}, "amortisation_months"),
            ({"node": onprem_node.pk, "gpu_model": ""}, "site"),  # both site and node
            ({"site": None}, "site"),  # neither
            ({"site": SiteFactory().pk}, "site"),  # a cloud site
            ({"site": None, "node": NodeFactory().pk}, "node"),  # a cloud node
            ({"site": None, "node": onprem_node.pk}, "gpu_model"),  # node model with a GPU model
            ({"gpu_model": "H100"}, "gpu_model"),  # a catalogue key where NVML names are meant
        ]

    def make(self, **kwargs):
        defaults = {
            "site": OnPremSiteFactory(),
            "purchase_usd_per_gpu": Decimal("37500"),
            "amortisation_months": 48,
            "ops_usd_per_gpu_year": Decimal("3750"),
            "effective_from": date(2025, 1, 1),
        }
        return OnPremCostModel.objects.create(**{**defaults, **kwargs})

    def create_payload(self):
        return {
            "site": OnPremSiteFactory().pk,
            "node": None,
            "gpu_model": H100,
            "purchase_usd_per_gpu": "37500.00",
            "amortisation_months": 48,
            "ops_usd_per_gpu_year": "3750.00",
            "effective_from": "2025-01-01",
            "note": "DGX H100",
        }

    def update_payload(self, instance):
        return {"amortisation_months": 60, "note": "five years"}


@pytest.mark.django_db
def test_cost_models_expose_their_usd_per_gpu_hour(admin_api):
    model = TestOnPremCostModelAPI().make()
    row = admin_api.get(reverse("api:onprem-cost-model-detail", kwargs={"pk": model.pk})).data
    # $37,500 / (48 × 730 h) + $3,750 / 8,760 h = 1.070205 + 0.428082.
    assert row["usd_per_gpu_hour"] == "1.498288"
    patched = admin_api.patch(
        reverse("api:onprem-cost-model-detail", kwargs={"pk": model.pk}), {"amortisation_months": 60}, format="json"
    )
    assert patched.data["usd_per_gpu_hour"] == "1.284247"


class TestEgressRateAPI(APIResourceTests):
    basename = "egress-rate"
    model = EgressRate
    compare_fields = ("provider_kind", "location_class", "tier_start_gb", "usd_per_gb", "effective_from")
    bad_payloads = [
        ({"usd_per_gb": "-0.01"}, "usd_per_gb"),
        ({"usd_per_gb": "lots"}, "usd_per_gb"),
        ({"location_class": "next-door"}, "location_class"),
        ({"provider_kind": "azure"}, "provider_kind"),
        ({"tier_start_gb": -1}, "tier_start_gb"),
        ({"effective_from": ""}, "effective_from"),
    ]

    def make(self, **kwargs):
        defaults = {
            "provider_kind": "aws",
            "location_class": "internet",
            "tier_start_gb": next(_n) * 100,
            "usd_per_gb": Decimal("0.09"),
            "effective_from": date(2025, 1, 1),
        }
        return EgressRate.objects.create(**{**defaults, **kwargs})

    def create_payload(self):
        return {
            "provider_kind": "gcp",
            "location_class": "same-continent",
            "tier_start_gb": 0,
            "usd_per_gb": "0.018626",
            "effective_from": "2026-01-01",
            "note": "Europe: $0.02/GiB",
        }

    def update_payload(self, instance):
        return {"usd_per_gb": "0.080000"}


@pytest.mark.django_db
def test_egress_rate_filters(admin_api):
    catalogue_load()
    url = reverse("api:egress-rate-list")
    aws_internet = admin_api.get(url, {"provider_kind": "aws", "location_class": "internet"}).data
    assert [r["tier_start_gb"] for r in aws_internet["results"]] == [0, 100, 10000, 50000, 150000]
    assert admin_api.get(url, {"location_class": "nowhere"}).status_code == 400
