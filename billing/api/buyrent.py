"""Buy vs rent API: per GPU model, the fleet's measured utilisation, cloud $/GPU-hour (on-demand, spot, with
commitments), the on-prem cost per used GPU-hour and the break-even utilisation and months (billing.buyrent),
with what-if figures — within the caller's team scope (fleet.scoping)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import buyrent, selectors
from billing.api.common import MONEY, PERIOD_PARAMETERS, PeriodSerializer, scoped_teams
from billing.models import LedgerDay
from core.api.fields import ascii_integer
from core.validators import validate_one_line

PCT = {"max_digits": 12, "decimal_places": 2, "read_only": True, "allow_null": True}


# --- query parameters --------------------------------------------------------------------------------------
class PlainDecimalField(serializers.DecimalField):
    """A decimal written in ASCII digits (``12.5``); "1e3", "NaN" and "١٢" are refused as not numbers."""

    default_error_messages = {"invalid": "Expected a number such as 12.5 (ASCII digits, no exponent)."}

    def to_internal_value(self, data):
        text = str(data).strip()
        if not buyrent.PLAIN_NUMBER.fullmatch(text):
            self.fail("invalid")
        return super().to_internal_value(text)


class WholeNumberField(serializers.IntegerField):
    """An integer written in ASCII digits (``48``): no "4.8", "+48" or other scripts' digits."""

    default_error_messages = {"invalid": "Expected a whole number written in ASCII digits (0-9)."}

    def to_internal_value(self, data):
        number = ascii_integer(data)
        if number is None:
            self.fail("invalid")
        return super().to_internal_value(number)


class BuyRentParamsSerializer(PeriodSerializer):
    """The window (default: the last 30 days, today included), a GPU model and what-if figures."""

    gpu_model = serializers.CharField(required=False, allow_blank=True, max_length=100, validators=[validate_one_line])
    purchase_usd_per_gpu = PlainDecimalField(
        max_digits=12,
        decimal_places=2,
        min_value=Decimal(0),
        required=False,
        error_messages={"min_value": "A purchase price cannot be negative."},
    )
    amortisation_months = WholeNumberField(
        min_value=1,
        max_value=buyrent.AMORTISATION_MONTHS_MAX,
        required=False,
        error_messages={"min_value": "The amortisation period is at least 1 month."},
    )
    ops_usd_per_gpu_year = PlainDecimalField(
        max_digits=12,
        decimal_places=2,
        min_value=Decimal(0),
        required=False,
        error_messages={"min_value": "An operations cost cannot be negative."},
    )
    utilisation = PlainDecimalField(max_digits=12, decimal_places=6, required=False)
    usd_per_kwh = PlainDecimalField(
        max_digits=12,
        decimal_places=6,
        min_value=Decimal(0),
        max_value=buyrent.USD_PER_KWH_MAX,
        required=False,
        error_messages={"min_value": "An electricity price cannot be negative."},
    )

    def validate_utilisation(self, value):
        problem = buyrent.utilisation_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value

    def validate(self, attrs):
        today = selectors.utc_today()
        start, last = buyrent.window_resolve(first=attrs.get("from"), last=attrs.get("to"), today=today)
        errors = selectors.period_errors(start=start, last=last)
        if errors:
            raise serializers.ValidationError(errors)
        return {**attrs, "start": start, "end": last + timedelta(days=1), "last": last, "today": today}


# --- output serializers ------------------------------------------------------------------------------------
class BuyRentCloudPriceSerializer(serializers.Serializer):
    """A $/GPU-hour to rent the model and where it comes from."""

    usd_per_gpu_hour = serializers.DecimalField(**MONEY)
    basis = serializers.CharField(read_only=True, help_text="list, commitment or assumption.")
    provider_kind = serializers.CharField(read_only=True)
    region = serializers.CharField(read_only=True)
    instance_type = serializers.CharField(read_only=True)
    commitment = serializers.CharField(read_only=True, help_text="The commitment's name (basis commitment).")
    discount_pct = serializers.DecimalField(**PCT)


class BuyRentOnPremCostSerializer(serializers.Serializer):
    """The owning cost compared: the fleet's cost model or what-if figures."""

    purchase_usd_per_gpu = serializers.DecimalField(**MONEY)
    amortisation_months = serializers.IntegerField(read_only=True)
    ops_usd_per_gpu_year = serializers.DecimalField(**MONEY)
    usd_per_owned_gpu_hour = serializers.DecimalField(**MONEY, help_text="Amortisation + operations.")
    basis = serializers.CharField(read_only=True, help_text="cost-model or what-if.")
    cost_model_id = serializers.IntegerField(read_only=True, allow_null=True)
    site = serializers.CharField(read_only=True)
    effective_from = serializers.DateField(read_only=True, allow_null=True)
    covered_gpu_hours = serializers.DecimalField(
        **MONEY, help_text="The owned GPU-hours of the model in the window it covers (the most of any cost model)."
    )


class BuyRentEnergySerializer(serializers.Serializer):
    """The energy of one used GPU-hour."""

    kwh_per_gpu_hour = serializers.DecimalField(**MONEY, help_text="Per used GPU-hour, PUE included.")
    kwh_basis = serializers.CharField(read_only=True, help_text="measured, estimated or unknown.")
    usd_per_kwh = serializers.DecimalField(**MONEY)
    price_basis = serializers.CharField(read_only=True, help_text="what-if, site or assumption.")
    usd_per_gpu_hour = serializers.DecimalField(**MONEY)


class BuyRentBreakEvenSerializer(serializers.Serializer):
    """Owning against one cloud price; null utilisation or months: never (or no utilisation to say)."""

    versus = serializers.CharField(read_only=True, help_text="on-demand, spot or commitments.")
    cloud_usd_per_gpu_hour = serializers.DecimalField(**MONEY)
    utilisation_pct = serializers.DecimalField(**PCT, help_text="Break-even utilisation; null: never.")
    onprem_cheaper = serializers.BooleanField(read_only=True, allow_null=True)
    saving_usd_per_month = serializers.DecimalField(**MONEY, allow_null=True, help_text="Per GPU.")
    months = serializers.DecimalField(**PCT, help_text="Months to earn the purchase back; null: never.")


class BuyRentUsageSerializer(serializers.Serializer):
    """What the fleet's GPUs of the model did in the window."""

    gpu_hours = serializers.DecimalField(**MONEY)
    idle_gpu_hours = serializers.DecimalField(**MONEY)
    onprem_gpu_hours = serializers.DecimalField(**MONEY)
    onprem_idle_gpu_hours = serializers.DecimalField(**MONEY)
    onprem_energy_kwh = serializers.DecimalField(**MONEY, help_text="Measured, PUE included.")


class BuyRentRowSerializer(serializers.Serializer):
    """Buy vs rent for one GPU model."""

    gpu_model = serializers.CharField(read_only=True)
    usage = BuyRentUsageSerializer(read_only=True)
    measured_utilisation_pct = serializers.DecimalField(**PCT)
    utilisation_pct = serializers.DecimalField(**PCT, help_text="The one compared: what-if, else measured.")
    utilisation_basis = serializers.CharField(read_only=True)
    on_demand = BuyRentCloudPriceSerializer(read_only=True, allow_null=True)
    spot = BuyRentCloudPriceSerializer(read_only=True, allow_null=True)
    committed = BuyRentCloudPriceSerializer(read_only=True, allow_null=True)
    onprem = BuyRentOnPremCostSerializer(read_only=True, allow_null=True)
    energy = BuyRentEnergySerializer(read_only=True)
    onprem_usd_per_used_gpu_hour = serializers.DecimalField(**MONEY, allow_null=True)
    break_even = BuyRentBreakEvenSerializer(many=True, read_only=True)
    notes = serializers.ListField(child=serializers.CharField(), read_only=True)


class BuyRentSerializer(serializers.Serializer):
    """Buy vs rent per GPU model over a window."""

    date_from = serializers.DateField(source="start", read_only=True)
    date_to = serializers.DateField(source="last_day", read_only=True)
    savings_plan_pct = serializers.DecimalField(**PCT, help_text="The assumed plan discount where none is in force.")
    rows = BuyRentRowSerializer(many=True, read_only=True)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["from"], data["to"] = data.pop("date_from"), data.pop("date_to")
        return data


class BuyRentView(APIView):
    """Buy vs rent per GPU model: utilisation, cloud and on-prem $/GPU-hour, break-even utilisation and months."""

    queryset = LedgerDay.objects.none()  # reads need billing.view_ledgerday

    @extend_schema(
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATE, description="First UTC day (default: 29 days before `to`)."),
            OpenApiParameter("to", OpenApiTypes.DATE, description="Last UTC day, inclusive (default: today)."),
            *[p for p in PERIOD_PARAMETERS if p.name == "team"],
            OpenApiParameter(
                "gpu_model", OpenApiTypes.STR, description="Catalogue key (H100) or NVML name; default: every model."
            ),
            OpenApiParameter("purchase_usd_per_gpu", OpenApiTypes.DECIMAL, description="What-if purchase per GPU."),
            OpenApiParameter("amortisation_months", OpenApiTypes.INT, description="What-if amortisation (1-240)."),
            OpenApiParameter("ops_usd_per_gpu_year", OpenApiTypes.DECIMAL, description="What-if operations per GPU."),
            OpenApiParameter("utilisation", OpenApiTypes.DECIMAL, description="What-if utilisation, % (0 < u ≤ 100)."),
            OpenApiParameter("usd_per_kwh", OpenApiTypes.DECIMAL, description="What-if electricity $/kWh."),
        ],
        responses={200: BuyRentSerializer},
    )
    def get(self, request):
        params = BuyRentParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        p = params.validated_data
        what_if = buyrent.WhatIf(
            purchase_usd_per_gpu=p.get("purchase_usd_per_gpu"),
            amortisation_months=p.get("amortisation_months"),
            ops_usd_per_gpu_year=p.get("ops_usd_per_gpu_year"),
            utilisation_pct=p.get("utilisation"),
            usd_per_kwh=p.get("usd_per_kwh"),
        )
        try:
            answer = buyrent.buy_vs_rent(
                start=p["start"],
                end=p["end"],
                teams=scoped_teams(request, p.get("team")),
                today=p["today"],
                gpu_model=p.get("gpu_model", ""),
                what_if=what_if,
            )
        except buyrent.BuyRentError as error:
            raise serializers.ValidationError({error.field: [error.message]}) from None
        return Response(BuyRentSerializer(answer).data)


def register(router) -> None:
    """The buy-vs-rent endpoint is a plain view (urlpatterns): nothing to add to the router."""


urlpatterns = [
    path("spend/buy-vs-rent/", BuyRentView.as_view(), name="spend-buy-vs-rent"),
]
