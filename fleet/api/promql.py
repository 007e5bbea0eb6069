"""REST API resource of PromQL sources (/api/v1/promql-sources/): the Prometheus-compatible APIs Fleetdeck reads."""

from core.api.serializers import ValidatedModelSerializer
from core.api.views import FleetdeckModelViewSet
from core.filters import FleetdeckFilterSet, StableOrderingFilter
from fleet.models import PromQLSource


class PromQLSourceSerializer(ValidatedModelSerializer):
    class Meta:
        model = PromQLSource
        fields = (
            "id",
            "name",
            "site",
            "url",
            "token_ref",
            "selector",
            "enabled",
            "read_until",
            "last_success_at",
            "last_error",
            "consecutive_failures",
            "created",
        )
        # Written by the reader (fleet.telemetry.promql), not by clients.
        read_only_fields = ("read_until", "last_success_at", "last_error", "consecutive_failures", "created")


class PromQLSourceFilterSet(FleetdeckFilterSet):
    ordering = StableOrderingFilter(fields=("name", "created", "last_success_at", "consecutive_failures"))

    class Meta:
        model = PromQLSource
        fields = ("name", "site", "enabled")


class PromQLSourceViewSet(FleetdeckModelViewSet):
    queryset = PromQLSource.objects.all()
    serializer_class = PromQLSourceSerializer
    filterset_class = PromQLSourceFilterSet
