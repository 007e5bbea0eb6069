"""The quotas API: team quotas (operators and admins write, viewers read) with each team's usage of them."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response

from core.api.serializers import ValidatedModelSerializer
from core.api.views import FleetdeckModelViewSet
from fleet.scoping import TeamScopedViewMixin
from scheduler import selectors
from scheduler.filtersets import TeamQuotaFilterSet
from scheduler.models import TeamQuota


class TeamQuotaSerializer(ValidatedModelSerializer):
    """A quota and its team's usage now. The rules (``TeamQuota.clean``): no negative guarantee or borrow limit,
    a positive weight, a known GPU model, and guarantees of a model (over all teams) within the fleet's GPUs."""

    team_name = serializers.CharField(source="team.name", read_only=True)
    cap_gpus = serializers.IntegerField(read_only=True, help_text="Guarantee + borrow limit: the most it may hold.")
    used_gpus = serializers.SerializerMethodField(help_text="GPUs its placed and running jobs hold on existing nodes.")
    borrowed_gpus = serializers.SerializerMethodField(help_text="Of those, beyond its guarantee (preemptible).")
    share = serializers.SerializerMethodField(help_text="used ÷ (guarantee + borrow); null when both are 0.")
    # Plain integers: the model's check constraints back these, but the clear message comes from clean().
    guaranteed_gpus = serializers.IntegerField(min_value=None, max_value=100_000)
    borrow_limit_gpus = serializers.IntegerField(min_value=None, max_value=100_000, required=False)
    weight = serializers.DecimalField(max_digits=8, decimal_places=3, required=False)

    class Meta:
        model = TeamQuota
        fields = (
            "id",
            "team",
            "team_name",
            "gpu_model",
            "guaranteed_gpus",
            "borrow_limit_gpus",
            "weight",
            "cap_gpus",
            "used_gpus",
            "borrowed_gpus",
            "share",
            "created",
            "updated",
        )
        read_only_fields = ("created", "updated")

    def _row(self, quota: TeamQuota) -> selectors.QuotaRow:
        rows = self.context.setdefault("_quota_rows", {})
        if quota.pk not in rows:
            for row in selectors.quota_rows(quotas=[quota]):
                rows[quota.pk] = row
        return rows[quota.pk]

    def get_used_gpus(self, quota: TeamQuota) -> int:
        """GPUs the team holds of the quota's model on existing nodes."""
        return self._row(quota).used_gpus

    def get_borrowed_gpus(self, quota: TeamQuota) -> int:
        """Of those, beyond the guarantee."""
        return self._row(quota).borrowed_gpus

    @extend_schema_field(serializers.DecimalField(max_digits=12, decimal_places=4, allow_null=True))
    def get_share(self, quota: TeamQuota):
        """used ÷ (guarantee + borrow), 4 places, as a string like the other decimals; None when the cap is 0."""
        share = self._row(quota).share
        return None if share is None else str(share)


class TeamQuotaViewSet(TeamScopedViewMixin, FleetdeckModelViewSet):
    """Team quotas per GPU model (the caller's teams' for a viewer limited to teams), with usage."""

    queryset = TeamQuota.objects.select_related("team").order_by("team__name", "gpu_model", "pk")
    serializer_class = TeamQuotaSerializer
    filterset_class = TeamQuotaFilterSet

    def get_serializer_context(self):
        """Usage of every listed quota is read once per request (``selectors.quota_rows``)."""
        return {**super().get_serializer_context(), "_quota_rows": {}}

    def list(self, request, *args, **kwargs):
        """Team quotas with each team's usage now: used and borrowed GPUs on existing nodes, and its share."""
        # The usage of the whole page is read together (two or three queries), not per row.
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        items = list(queryset) if page is None else page
        rows = {row.quota.pk: row for row in selectors.quota_rows(quotas=items)}
        data = self.get_serializer_class()(
            items, many=True, context={**self.get_serializer_context(), "_quota_rows": rows}
        ).data
        return Response(data) if page is None else self.get_paginated_response(data)
