"""FOCUS API: the ledger as a FinOps FOCUS 1.0 CSV (``GET spend/focus.csv``, streamed, in the caller's team
scope like the other spend endpoints) and the import of a cloud's FOCUS billing export as billed costs
(``POST billed-costs/focus-import/``, a multipart ``file``, or JSON ``{"csv": "…"}`` for a small file: needs
``billing.add_billedcost``, operators and admins, never a read-only token)."""

from __future__ import annotations

import io
from dataclasses import asdict

from django.http import StreamingHttpResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.api.common import PERIOD_PARAMETERS, PeriodSerializer, scoped_teams
from billing.focus.export import focus_export_csv
from billing.focus.importer import IMPORT_MAX_BYTES, FocusImportError, focus_import
from billing.models import BilledCost, LedgerDay


class CSVNegotiationRenderer(BaseRenderer):
    """Lets ``Accept: text/csv`` through content negotiation; the CSV itself is a streaming response and errors
    are rendered as JSON (``finalize_response``)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return JSONRenderer().render(data)


class FocusExportView(APIView):
    """The ledger of a period (``from``/``to``, UTC days, both inclusive) as a FOCUS 1.0 CSV (docs/billing.md)."""

    queryset = LedgerDay.objects.none()  # reads need billing.view_ledgerday
    renderer_classes = [JSONRenderer, CSVNegotiationRenderer]

    def finalize_response(self, request, response, *args, **kwargs):
        if response.status_code >= 400:  # errors stay JSON even when CSV was asked for
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(
        parameters=PERIOD_PARAMETERS,
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="FOCUS 1.0 CSV.")},
    )
    def get(self, request):
        params = PeriodSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        p = params.validated_data
        teams = scoped_teams(request, p.get("team"))
        response = StreamingHttpResponse(
            focus_export_csv(start=p["start"], end=p["end"], teams=teams), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="focus-{p["start"]}-{p["last"]}.csv"'
        return response


class FocusImportOptionsSerializer(serializers.Serializer):
    skip_unknown_accounts = serializers.BooleanField(
        default=False, help_text="Leave out (and list) rows of accounts no provider has, instead of refusing."
    )


class FocusUploadSerializer(FocusImportOptionsSerializer):
    file = serializers.FileField(
        help_text=f"A FOCUS 1.0 billing export as CSV, or gzip-compressed CSV; at most {IMPORT_MAX_BYTES:,} bytes "
        "of CSV."
    )


class FocusTextSerializer(FocusImportOptionsSerializer):
    csv = serializers.CharField(trim_whitespace=False, help_text="The FOCUS CSV itself (small files).")


class ProviderDaysSerializer(serializers.Serializer):
    provider_id = serializers.IntegerField()
    provider_name = serializers.CharField()
    first_day = serializers.DateField()
    last_day = serializers.DateField()
    days = serializers.IntegerField()
    usd = serializers.DecimalField(max_digits=20, decimal_places=6)
    rows = serializers.IntegerField(help_text="Rows of the file counted for it.")


class FocusImportResultSerializer(serializers.Serializer):
    rows = serializers.IntegerField()
    counted = serializers.IntegerField(help_text="Rows of compute instance usage, summed into billed costs.")
    skipped = serializers.IntegerField(help_text="Rows that are not compute instance usage.")
    other_providers = serializers.IntegerField(help_text="Rows of providers other than AWS and Google Cloud.")
    skipped_unknown_accounts = serializers.ListField(child=serializers.CharField())
    days_written = serializers.IntegerField()
    usd = serializers.DecimalField(max_digits=20, decimal_places=6)
    providers = ProviderDaysSerializer(many=True)


class FocusImportView(APIView):
    """Import a FOCUS billing export as billed costs per account and day: every row checked first, all written
    or none (400 lists why, by line)."""

    queryset = BilledCost.objects.none()  # POST needs billing.add_billedcost: operators and admins

    @extend_schema(
        request={"multipart/form-data": FocusUploadSerializer, "application/json": FocusTextSerializer},
        responses={200: FocusImportResultSerializer},
    )
    def post(self, request):
        multipart = request.content_type.startswith("multipart/")
        given = (FocusUploadSerializer if multipart else FocusTextSerializer)(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        file = data["file"] if multipart else io.BytesIO(data["csv"].encode())
        try:
            report = focus_import(file=file, skip_unknown_accounts=data["skip_unknown_accounts"])
        except FocusImportError as exc:
            raise serializers.ValidationError({"file": exc.errors[:50]}) from exc
        result = {**asdict(report), "days_written": report.days_written, "usd": report.usd}
        return Response(FocusImportResultSerializer(result).data)


def register(router) -> None:
    """The FOCUS endpoints are plain views (urlpatterns): nothing to add to the router."""


urlpatterns = [
    path("spend/focus.csv", FocusExportView.as_view(), name="spend-focus-csv"),
    path("billed-costs/focus-import/", FocusImportView.as_view(), name="billed-costs-focus-import"),
]
