"""Carbon API: each site's grid carbon intensity and where it comes from, and the import of hourly values.

``GET carbon/intensities/`` reads ``billing.carbon.site_intensity_list`` (every role); ``POST
carbon/intensities/import/`` (multipart with a ``file``, or JSON with the ``csv`` text) needs
``billing.add_gridintensityhour``: operators and admins, never a read-only token. A successful import queues the
ledger's recomputation of those sites' nodes and days, so their ``co2e_kg`` follows.
"""

from __future__ import annotations

import io
from dataclasses import asdict
from functools import partial

from django.db import transaction
from django.urls import path
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.api.common import ProviderKindField
from billing.carbon import IMPORT_MAX_BYTES, IntensityImportError, grid_intensity_import, site_intensity_list
from billing.choices import IntensitySource
from billing.models import GridIntensityHour
from billing.tasks.ledger import ledger_backfill
from fleet.models import Node

INTENSITY = {"max_digits": 7, "decimal_places": 2, "read_only": True, "allow_null": True}


class SiteIntensitySerializer(serializers.Serializer):
    """A site's intensity for the hour asked about, where it comes from, and the fallbacks."""

    site = serializers.IntegerField(source="site.pk")
    site_name = serializers.CharField(source="site.name")
    provider_kind = ProviderKindField(source="site.provider.kind")
    region = serializers.CharField(source="site.region")
    hour = serializers.DateTimeField()
    g_per_kwh = serializers.DecimalField(**INTENSITY, help_text="gCO2e/kWh in force; null: unknown.")
    source = serializers.ChoiceField(choices=IntensitySource.choices, help_text="hourly, operator, dataset, unknown.")
    operator_g_per_kwh = serializers.DecimalField(**INTENSITY, help_text="The site's carbon_g_per_kwh.")
    dataset_g_per_kwh = serializers.DecimalField(**INTENSITY, help_text="The shipped value of the site's region.")
    dataset_source = serializers.CharField()
    latest_hourly = serializers.DateTimeField(allow_null=True, help_text="The site's latest imported hour.")
    warning = serializers.CharField(help_text="Why some hours have no carbon figure; empty when all have one.")


class IntensityParamsSerializer(serializers.Serializer):
    at = serializers.DateTimeField(required=False, help_text="A moment; its UTC hour is looked up (default now).")


FORMAT = "CSV with the columns site,hour,g_per_kwh (hour ISO 8601 with an offset or Z, on a UTC hour)"


class IntensityUploadSerializer(serializers.Serializer):
    """multipart/form-data: the CSV file."""

    file = serializers.FileField(help_text=f"{FORMAT}; at most {IMPORT_MAX_BYTES:,} bytes.")


class IntensityTextSerializer(serializers.Serializer):
    """application/json: the CSV text."""

    csv = serializers.CharField(max_length=IMPORT_MAX_BYTES, trim_whitespace=False, help_text=f"{FORMAT}.")


class BackfillSerializer(serializers.Serializer):
    date_from = serializers.DateField()
    date_to = serializers.DateField()
    nodes = serializers.IntegerField()


class IntensityImportResultSerializer(serializers.Serializer):
    rows = serializers.IntegerField()
    created = serializers.IntegerField()
    updated = serializers.IntegerField(help_text="Hours that had a value, now replaced.")
    sites = serializers.ListField(child=serializers.CharField(), source="site_names")
    first_hour = serializers.DateTimeField()
    last_hour = serializers.DateTimeField()
    ledger_backfill = BackfillSerializer(allow_null=True, help_text="The ledger recomputation queued, if any.")


class SiteIntensityListView(APIView):
    """Every site's grid carbon intensity for one UTC hour (default: now), by name."""

    queryset = GridIntensityHour.objects.none()  # reads need billing.view_gridintensityhour (every role)

    @extend_schema(
        parameters=[OpenApiParameter("at", OpenApiTypes.DATETIME, description="Default now; its UTC hour counts.")],
        responses={200: SiteIntensitySerializer(many=True)},
    )
    def get(self, request):
        params = IntensityParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        rows = site_intensity_list(at=params.validated_data.get("at"))
        return Response(SiteIntensitySerializer(rows, many=True).data)


class IntensityImportView(APIView):
    """Import hourly values from a CSV upload: every row checked first, all written or none (400 lists why)."""

    queryset = GridIntensityHour.objects.none()  # POST needs billing.add_gridintensityhour: operators and admins

    @extend_schema(
        request={"multipart/form-data": IntensityUploadSerializer, "application/json": IntensityTextSerializer},
        responses={200: IntensityImportResultSerializer},
    )
    def post(self, request):
        if request.content_type.startswith("multipart/"):
            upload = IntensityUploadSerializer(data=request.data)
            upload.is_valid(raise_exception=True)
            file = upload.validated_data["file"]
        else:
            text = IntensityTextSerializer(data=request.data)
            text.is_valid(raise_exception=True)
            file = io.StringIO(text.validated_data["csv"])
        try:
            report = grid_intensity_import(file=file)
        except IntensityImportError as exc:
            raise serializers.ValidationError({"file": exc.errors[:50]}) from exc
        start, end = report.first_hour.date(), min(report.last_hour.date(), timezone.now().date())
        node_ids = list(Node.objects.filter(site_id__in=report.site_ids).values_list("pk", flat=True))
        backfill = None
        if node_ids and start <= end:
            transaction.on_commit(partial(ledger_backfill.delay, start.isoformat(), end.isoformat(), node_ids))
            backfill = {"date_from": start, "date_to": end, "nodes": len(node_ids)}
        result = {**asdict(report), "ledger_backfill": backfill}
        return Response(IntensityImportResultSerializer(result).data, status=status.HTTP_200_OK)


def register(router) -> None:
    """The carbon endpoints are plain views (urlpatterns): nothing to add to the router."""


urlpatterns = [
    path("carbon/intensities/", SiteIntensityListView.as_view(), name="carbon-intensities"),
    path("carbon/intensities/import/", IntensityImportView.as_view(), name="carbon-intensities-import"),
]
