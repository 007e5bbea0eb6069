"""Ledger API: the hourly cost ledger (read-only) and egress records (manual ones written here), both within the
caller's team scope (fleet.scoping)."""

from __future__ import annotations

from rest_framework import serializers, viewsets

from billing.api.common import ProviderKindField
from billing.choices import EgressCause
from billing.filtersets import EgressRecordFilterSet, LedgerEntryFilterSet
from billing.models import EgressRecord, LedgerEntry, LedgerShare
from core.api.serializers import ValidatedModelSerializer
from core.api.views import FleetdeckModelViewSet
from fleet.scoping import TeamScopedViewMixin


class LedgerShareSerializer(serializers.ModelSerializer):
    """One team's (and project's) share of a sliced node-hour (MIG, time-slicing), by slice size."""

    class Meta:
        model = LedgerShare
        fields = (
            "team",
            "project",
            "fraction",
            "gpu_hours",
            "compute_usd",
            "energy_kwh",
            "energy_usd",
            "idle_gpu_hours",
            "idle_usd",
            "co2e_kg",
            "broken_gpu_hours",
            "broken_usd",
            "covered_usd",
        )
        read_only_fields = fields


class LedgerEntrySerializer(serializers.ModelSerializer):
    """One ledger row: what one node cost in one UTC hour (read-only). ``co2e_kg`` is null where no grid
    intensity is known; ``broken_usd`` and ``covered_usd`` are parts of ``compute_usd``; ``shares`` splits the
    row across the teams holding its GPUs' slices (empty: the row is the node's team's alone)."""

    provider_kind = ProviderKindField(read_only=True)
    shares = LedgerShareSerializer(many=True, read_only=True)

    class Meta:
        model = LedgerEntry
        fields = (
            "id",
            "node",
            "hour",
            "provider",
            "provider_kind",
            "site",
            "team",
            "project",
            "gpu_model",
            "lifecycle",
            "gpu_count",
            "active_s",
            "rate_usd_per_h",
            "compute_usd",
            "energy_kwh",
            "energy_usd",
            "gpu_hours",
            "idle_gpu_hours",
            "idle_usd",
            "priced",
            "co2e_kg",
            "broken_gpu_hours",
            "broken_usd",
            "covered_usd",
            "commitment",
            "shares",
        )
        read_only_fields = fields


class EgressRecordSerializer(ValidatedModelSerializer):
    """An egress record; a caller limited to teams writes only for one of them."""

    source_provider_kind = ProviderKindField()

    class Meta:
        model = EgressRecord
        fields = (
            "id",
            "occurred_at",
            "source",
            "destination",
            "source_provider_kind",
            "location_class",
            "bytes",
            "usd",
            "cause",
            "planned",
            "team",
            "project",
            "placement",
            "dataset",
            "external_key",
        )
        read_only_fields = ("cause", "planned", "placement", "dataset", "external_key")

    def validate(self, attrs):
        attrs = super().validate(attrs)
        team = attrs.get("team", getattr(self.instance, "team", None))
        project = attrs.get("project", getattr(self.instance, "project", None))
        if team and project and project.team_id != team.pk:
            raise serializers.ValidationError({"project": "This project belongs to another team."})
        scope = self.context.get("scope")
        if scope is not None and (team is None or team.pk not in scope):
            raise serializers.ValidationError({"team": "Choose one of your own teams."})
        return attrs


class LedgerEntryViewSet(TeamScopedViewMixin, viewsets.ReadOnlyModelViewSet):
    """The hourly cost ledger, one row per node and hour, newest first."""

    queryset = LedgerEntry.objects.prefetch_related("shares")
    serializer_class = LedgerEntrySerializer
    filterset_class = LedgerEntryFilterSet


class EgressRecordViewSet(TeamScopedViewMixin, FleetdeckModelViewSet):
    """Egress records; records entered here are manual (placements and Cost Explorer write their own)."""

    queryset = EgressRecord.objects.all()
    serializer_class = EgressRecordSerializer
    filterset_class = EgressRecordFilterSet

    def perform_create(self, serializer):
        serializer.save(cause=EgressCause.MANUAL)


def register(router) -> None:
    """Add the ledger and egress record viewsets to ``router``."""
    router.register("egress-records", EgressRecordViewSet)
    router.register("ledger", LedgerEntryViewSet, basename="ledgerentry")


urlpatterns: list = []
