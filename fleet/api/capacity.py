"""API of fractional GPUs and broken capacity: GPU slices (/gpu-slices/) and health events (/health-events/).

Both are inventory, read like nodes and GPUs (``view_`` permission, every team's rows); operators and admins
write slices and resolve events. See docs/inventory.md, "Fractional GPUs and health events".
"""

import django_filters as filters
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from core.api.permissions import ModelActionPermissions
from core.api.views import FleetdeckModelViewSet
from core.filters import FleetdeckFilterSet, IntegerFilter, StableOrderingFilter
from fleet.api import serializers
from fleet.choices import GpuSliceKind, HealthEventKind
from fleet.health_events import health_event_resolve
from fleet.models import GpuSlice, HealthEvent


class GpuSliceFilterSet(FleetdeckFilterSet):
    """Slices by GPU, node, team (id or slug), project, kind, and whether nobody holds them (idle)."""

    node = IntegerFilter(field_name="gpu__node_id", label="Node id")
    team_slug = filters.CharFilter(field_name="team__slug")
    kind = filters.MultipleChoiceFilter(choices=GpuSliceKind.choices)
    idle = filters.BooleanFilter(field_name="team", lookup_expr="isnull", label="Held by no team (idle $)")
    ordering = StableOrderingFilter(fields=("name", "units", "created"))

    class Meta:
        model = GpuSlice
        fields = ("gpu", "team", "project")


class HealthEventFilterSet(FleetdeckFilterSet):
    """Events by node, GPU, kind, and open (not resolved) or resolved; newest first unless ordered otherwise."""

    kind = filters.MultipleChoiceFilter(choices=HealthEventKind.choices)
    open = filters.BooleanFilter(field_name="resolved_at", lookup_expr="isnull", label="Not resolved yet")
    ordering = StableOrderingFilter(fields=("occurred_at", "resolved_at"))

    class Meta:
        model = HealthEvent
        fields = ("node", "gpu")


class GpuSliceViewSet(FleetdeckModelViewSet):
    """MIG instances and time-sliced replicas: which team uses which share of a GPU (billing splits its hours)."""

    queryset = GpuSlice.objects.select_related("gpu")
    serializer_class = serializers.GpuSliceSerializer
    filterset_class = GpuSliceFilterSet


class HealthEventViewSet(viewsets.ReadOnlyModelViewSet):
    """XID, ECC and GPU-lost events, newest first; an open one counts its GPU's hours as broken capacity $."""

    queryset = HealthEvent.objects.select_related("gpu", "node")
    serializer_class = serializers.HealthEventSerializer
    filterset_class = HealthEventFilterSet

    @extend_schema(
        request=serializers.HealthEventResolveSerializer,
        responses={200: serializers.HealthEventSerializer},
        description="Mark the event resolved (the GPU was fixed or replaced) at `resolved_at`, default now: its "
        "GPU's hours stop counting as broken capacity $ from then. 400 if it is resolved already or the time is "
        "before the event or in the future.",
    )
    @action(detail=True, methods=["post"], permission_classes=[ModelActionPermissions])
    def resolve(self, request, pk=None):
        """Resolve this event now or at the given time."""
        event = self.get_object()
        body = serializers.HealthEventResolveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            health_event_resolve(event=event, at=body.validated_data.get("resolved_at"))
        except DjangoValidationError as exc:
            raise exceptions.ValidationError(exc.message_dict) from exc
        return Response(serializers.HealthEventSerializer(event, context=self.get_serializer_context()).data)
