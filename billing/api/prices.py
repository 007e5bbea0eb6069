"""REST API of the price catalogue: instance prices, discounts, on-prem cost models and egress rates.

A price written through the API is an admin override (source ``override``); catalogue and Price List rows come
from ``load_prices`` and ``refresh_prices``. ``?at=YYYY-MM-DD`` lists the prices in force on a day.
"""

from __future__ import annotations

from rest_framework import serializers

from billing.api.common import ProviderKindField
from billing.filtersets import DiscountFilterSet, EgressRateFilterSet, InstancePriceFilterSet, OnPremCostModelFilterSet
from billing.models import Discount, EgressRate, InstancePrice, OnPremCostModel
from core.api.serializers import ValidatedModelSerializer
from core.api.views import FleetdeckModelViewSet
from fleet.catalog import GPU_SPECS


class InstancePriceSerializer(ValidatedModelSerializer):
    provider_kind = ProviderKindField(help_text="aws or gcp: on-prem capacity has cost models instead.")

    class Meta:
        model = InstancePrice
        fields = (
            "id",
            "provider_kind",
            "region",
            "instance_type",
            "gpu_model",
            "gpu_count",
            "on_demand_usd_per_h",
            "spot_usd_per_h",
            "effective_from",
            "source",
            "note",
            "created",
        )
        read_only_fields = ("source", "created")

    def validate_gpu_model(self, value: str) -> str:
        if value not in GPU_SPECS:
            raise serializers.ValidationError(f"Use a catalogue GPU key: {', '.join(GPU_SPECS)}.")
        return value


class DiscountSerializer(ValidatedModelSerializer):
    provider_name = serializers.CharField(source="provider.name", read_only=True)

    class Meta:
        model = Discount
        fields = (
            "id",
            "provider",
            "provider_name",
            "percent",
            "applies_to",
            "effective_from",
            "effective_to",
            "note",
        )


NVML_NAME_BY_KEY = {key: spec.nvml_name for key, spec in GPU_SPECS.items()}


class OnPremCostModelSerializer(ValidatedModelSerializer):
    usd_per_gpu_hour = serializers.DecimalField(
        max_digits=14, decimal_places=6, read_only=True, help_text="Amortisation + operations (energy excluded)."
    )

    class Meta:
        model = OnPremCostModel
        fields = (
            "id",
            "site",
            "node",
            "gpu_model",
            "purchase_usd_per_gpu",
            "amortisation_months",
            "ops_usd_per_gpu_year",
            "effective_from",
            "note",
            "usd_per_gpu_hour",
        )

    def validate_gpu_model(self, value: str) -> str:
        # GPUs carry NVML names; a catalogue key here would never match a node's GPUs.
        if value in NVML_NAME_BY_KEY:
            raise serializers.ValidationError(f"Use the NVML name, e.g. {NVML_NAME_BY_KEY[value]!r}.")
        return value


class EgressRateSerializer(ValidatedModelSerializer):
    provider_kind = ProviderKindField(help_text="Where data leaves.")

    class Meta:
        model = EgressRate
        fields = ("id", "provider_kind", "location_class", "tier_start_gb", "usd_per_gb", "effective_from", "note")


# --- viewsets -----------------------------------------------------------------------------------------------
class InstancePriceViewSet(FleetdeckModelViewSet):
    queryset = InstancePrice.objects.all()
    serializer_class = InstancePriceSerializer
    filterset_class = InstancePriceFilterSet


class DiscountViewSet(FleetdeckModelViewSet):
    queryset = Discount.objects.select_related("provider")
    serializer_class = DiscountSerializer
    filterset_class = DiscountFilterSet


class OnPremCostModelViewSet(FleetdeckModelViewSet):
    queryset = OnPremCostModel.objects.all()
    serializer_class = OnPremCostModelSerializer
    filterset_class = OnPremCostModelFilterSet


class EgressRateViewSet(FleetdeckModelViewSet):
    queryset = EgressRate.objects.all()
    serializer_class = EgressRateSerializer
    filterset_class = EgressRateFilterSet


def register(router) -> None:
    """Add the price viewsets to ``router`` (basenames price, discount, onprem-cost-model, egress-rate)."""
    router.register("prices", InstancePriceViewSet, basename="price")
    router.register("discounts", DiscountViewSet, basename="discount")
    router.register("onprem-cost-models", OnPremCostModelViewSet, basename="onprem-cost-model")
    router.register("egress-rates", EgressRateViewSet, basename="egress-rate")


urlpatterns = []
