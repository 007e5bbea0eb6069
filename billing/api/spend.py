"""Spend API: summaries of a period grouped by any dimension (JSON or CSV), egress by route, and reconciliation
of the ledger against what AWS billed — within the caller's team scope (fleet.scoping)."""

from __future__ import annotations

import io
from decimal import Decimal

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import selectors
from billing.api.common import MAX_PK, MONEY, PERIOD_PARAMETERS, PeriodSerializer, SummaryParamsSerializer, scoped_teams
from billing.ledger import reconciliation_list
from billing.models import BilledCost, EgressRecord, LedgerDay
from core.api.fields import IdField
from core.csv import SafeWriter
from fleet.models import Provider
from fleet.scoping import team_scope


# --- output serializers ------------------------------------------------------------------------------------
class SpendFiguresSerializer(serializers.Serializer):
    """The summed figures of a group or of the whole period."""

    compute_usd = serializers.DecimalField(**MONEY, help_text="Compute $ (the part of the GPUs' price paid).")
    energy_usd = serializers.DecimalField(**MONEY, help_text="Energy $ (metered power of on-prem sites).")
    total_usd = serializers.DecimalField(
        **MONEY, help_text="Total $: compute + energy + unused commitments (egress apart)."
    )
    idle_usd = serializers.DecimalField(**MONEY, help_text="Idle $: the part of compute paid for idle GPUs.")
    energy_kwh = serializers.DecimalField(**MONEY, help_text="Energy (kWh, PUE included).")
    gpu_hours = serializers.DecimalField(**MONEY, help_text="GPU-hours.")
    idle_gpu_hours = serializers.DecimalField(**MONEY, help_text="Idle GPU-hours.")
    # The figures of issue 12, after the existing ones (the CSV's columns follow this order).
    co2e_kg = serializers.DecimalField(
        **MONEY, help_text="kgCO2e of the energy; hours without a known grid intensity count as 0."
    )
    broken_gpu_hours = serializers.DecimalField(
        **MONEY, help_text="GPU-hours on GPUs with an open XID, ECC or lost health event (broken capacity)."
    )
    broken_usd = serializers.DecimalField(
        **MONEY, help_text="Broken capacity $: the part of compute paid for broken GPU-hours."
    )
    covered_usd = serializers.DecimalField(
        **MONEY, help_text="The part of compute paid at a committed rate (reserved instance, savings plan, CUD)."
    )
    unused_commitment_usd = serializers.DecimalField(
        **MONEY, help_text="Unused commitments $: commitments paid for and not used (part of total $)."
    )


class SpendRowSerializer(SpendFiguresSerializer):
    """One group of a summary: its key, label and figures."""

    key = serializers.CharField(allow_null=True, read_only=True, help_text="Id, name or day of the group.")
    label = serializers.CharField(read_only=True)


class SpendSummarySerializer(serializers.Serializer):
    """A period's spend grouped by one dimension, with totals."""

    group_by = serializers.CharField(read_only=True)
    date_from = serializers.DateField(read_only=True)
    date_to = serializers.DateField(read_only=True)
    rows = SpendRowSerializer(many=True, read_only=True)
    totals = SpendFiguresSerializer(read_only=True)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["from"], data["to"] = data.pop("date_from"), data.pop("date_to")
        return data


class EgressRouteSerializer(serializers.Serializer):
    """Egress of one route (source → destination) in the period."""

    source = serializers.CharField(read_only=True)
    destination = serializers.CharField(read_only=True)
    bytes = serializers.IntegerField(read_only=True)
    usd = serializers.DecimalField(**MONEY)
    records = serializers.IntegerField(read_only=True)


class EgressSummarySerializer(serializers.Serializer):
    """A period's egress by route, with the total $."""

    date_from = serializers.DateField(read_only=True)
    date_to = serializers.DateField(read_only=True)
    routes = EgressRouteSerializer(many=True, read_only=True)
    total_usd = serializers.DecimalField(**MONEY)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["from"], data["to"] = data.pop("date_from"), data.pop("date_to")
        return data


class ReconciliationRowSerializer(serializers.Serializer):
    """One day of one account: the ledger's estimate against what AWS billed."""

    day = serializers.DateField(read_only=True)
    estimated_usd = serializers.DecimalField(**MONEY)
    billed_usd = serializers.DecimalField(**MONEY, allow_null=True)
    difference_usd = serializers.DecimalField(**MONEY, allow_null=True)
    difference_pct = serializers.DecimalField(max_digits=12, decimal_places=2, read_only=True, allow_null=True)
    source = serializers.CharField(
        read_only=True, allow_null=True, help_text="Where the bill came from: cost-explorer or focus; null: no bill."
    )


# --- CSV ---------------------------------------------------------------------------------------------------
class SpendCSVRenderer(BaseRenderer):
    """A summary as CSV: a header row, one row per group, and a TOTAL row. Keys and labels that start like a
    spreadsheet formula are neutralised (core.csv); the figures are written as numbers, negative ones too."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"
    COLUMNS = ("key", "label", *selectors.SUMMED_FIELDS)

    def render(self, data, accepted_media_type=None, renderer_context=None):
        out = io.StringIO()
        writer = SafeWriter(out)
        writer.writerow(self.COLUMNS)
        for row in data.get("rows", []):
            writer.writerow([row.get("key"), row.get("label"), *self._figures(row)])  # None: an empty cell
        totals = data.get("totals")
        if totals:
            writer.writerow(["", "TOTAL", *self._figures(totals)])
        return out.getvalue().encode(self.charset)

    @staticmethod
    def _figures(row: dict) -> list[Decimal]:
        """The summed figures of a serialized row (decimal strings) as numbers, which csv_safe leaves as they are."""
        return [Decimal(row[c]) for c in selectors.SUMMED_FIELDS]


class SpendSummaryView(APIView):
    """Spend of a period grouped by one dimension, with totals; ``?format=csv`` (or summary.csv) for CSV."""

    queryset = LedgerDay.objects.none()  # reads need billing.view_ledgerday
    renderer_classes = [JSONRenderer, SpendCSVRenderer]

    def finalize_response(self, request, response, *args, **kwargs):
        if response.status_code >= 400:  # errors stay JSON even when CSV was asked for
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(
        parameters=[
            OpenApiParameter("group_by", OpenApiTypes.STR, enum=selectors.SPEND_DIMENSIONS, description="Dimension."),
            OpenApiParameter("format", OpenApiTypes.STR, enum=["json", "csv"], description="csv: text/csv."),
            *PERIOD_PARAMETERS,
        ],
        responses={200: SpendSummarySerializer},
    )
    def get(self, request, format=None):
        params = SummaryParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        p = params.validated_data
        teams = scoped_teams(request, p.get("team"))
        period = {"start": p["start"], "end": p["end"], "teams": teams}
        summary = {
            "group_by": p["group_by"],
            "date_from": p["start"],
            "date_to": p["last"],
            "rows": selectors.spend_by(dimension=p["group_by"], **period),
            "totals": selectors.spend_totals(**period).as_dict(),
        }
        response = Response(SpendSummarySerializer(summary).data)
        if getattr(request.accepted_renderer, "format", "") == "csv":
            name = f"spend-{p['group_by']}-{p['start']}-{p['last']}.csv"
            response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


class EgressSummaryView(APIView):
    """Egress of a period by route (from → to), with the total."""

    queryset = EgressRecord.objects.none()

    @extend_schema(parameters=PERIOD_PARAMETERS, responses={200: EgressSummarySerializer})
    def get(self, request):
        params = PeriodSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        p = params.validated_data
        period = {"start": p["start"], "end": p["end"], "teams": scoped_teams(request, p.get("team"))}
        summary = {
            "date_from": p["start"],
            "date_to": p["last"],
            "routes": selectors.egress_by_route(**period),
            "total_usd": selectors.egress_total_usd(**period),
        }
        return Response(EgressSummarySerializer(summary).data)


class ReconciliationParamsSerializer(PeriodSerializer):
    """The period parameters and the provider (AWS account) to reconcile."""

    provider = IdField(max_value=MAX_PK)

    def validate_provider(self, value):
        provider = Provider.objects.filter(pk=value).first()
        if provider is None:
            raise serializers.ValidationError("No such provider.")
        return provider


class ReconciliationView(APIView):
    """Estimated (ledger) against billed (AWS Cost Explorer) spend per day for one cloud account.

    Whole accounts hold every team's spend, so callers limited to some teams are refused.
    """

    queryset = LedgerDay.objects.none()

    @extend_schema(
        parameters=[
            OpenApiParameter("provider", OpenApiTypes.INT, required=True, description="Provider id."),
            *PERIOD_PARAMETERS[:2],
        ],
        responses={200: ReconciliationRowSerializer(many=True)},
    )
    def get(self, request):
        if team_scope(request.user) is not None:
            raise exceptions.PermissionDenied("Reconciliation covers whole accounts; you see your teams only.")
        params = ReconciliationParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        p = params.validated_data
        rows = reconciliation_list(provider=p["provider"], start=p["start"], end=p["end"])
        bills = BilledCost.objects.filter(provider=p["provider"], day__gte=p["start"], day__lt=p["end"])
        sources = dict(bills.values_list("day", "source"))
        rows = [{**row, "source": sources.get(row["day"])} for row in rows]
        return Response(ReconciliationRowSerializer(rows, many=True).data)


def register(router) -> None:
    """The spend endpoints are plain views (urlpatterns): nothing to add to the router."""


urlpatterns = [
    path("spend/summary/", SpendSummaryView.as_view(), name="spend-summary"),
    path("spend/summary.csv", SpendSummaryView.as_view(), {"format": "csv"}, name="spend-summary-csv"),
    path("spend/egress/", EgressSummaryView.as_view(), name="spend-egress"),
    path("spend/reconciliation/", ReconciliationView.as_view(), name="spend-reconciliation"),
]
