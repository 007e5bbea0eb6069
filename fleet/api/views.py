"""REST API viewsets of the fleet app."""

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from core.api.permissions import ModelActionPermissions
from core.api.views import FleetdeckModelViewSet
from fleet import filtersets, selectors
from fleet.api import serializers
from fleet.api.telemetry import PollReportSerializer
from fleet.inventory.sync import ADAPTERS
from fleet.inventory.tasks import sync_run_start
from fleet.models import GPU, Project, Provider, Site, SyncRun, Team
from fleet.telemetry.poll import POLLED_STATES, telemetry_poll


class ProviderViewSet(FleetdeckModelViewSet):
    queryset = Provider.objects.all()
    serializer_class = serializers.ProviderSerializer
    filterset_class = filtersets.ProviderFilterSet

    @extend_schema(
        request=None,
        responses={202: serializers.SyncRunSerializer},
        description="Queue a sync of this provider's cloud inventory (backoff ignored) for a worker. The answer is "
        "the sync run: poll GET /api/v1/sync-runs/{id}/ (its `url`, also the Location header) until `finished`.",
    )
    @action(detail=True, methods=["post"], permission_classes=[ModelActionPermissions])
    def sync(self, request, pk=None):
        """Queue a sync of this provider's cloud inventory now (backoff ignored); answer 202 with the run to poll."""
        provider = self.get_object()
        if provider.kind not in ADAPTERS:
            raise exceptions.ValidationError({"kind": "On-prem providers have no cloud inventory; import nodes."})
        if not provider.enabled:
            raise exceptions.ValidationError({"enabled": "This provider is disabled; enable it to sync."})
        run = sync_run_start(provider=provider)
        data = serializers.SyncRunSerializer(run, context=self.get_serializer_context()).data
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["url"]})


class SiteViewSet(FleetdeckModelViewSet):
    queryset = Site.objects.all()
    serializer_class = serializers.SiteSerializer
    filterset_class = filtersets.SiteFilterSet


class TeamViewSet(FleetdeckModelViewSet):
    queryset = Team.objects.all()
    serializer_class = serializers.TeamSerializer
    filterset_class = filtersets.TeamFilterSet


class ProjectViewSet(FleetdeckModelViewSet):
    queryset = Project.objects.select_related("team")
    serializer_class = serializers.ProjectSerializer
    filterset_class = filtersets.ProjectFilterSet


class NodeViewSet(FleetdeckModelViewSet):
    queryset = selectors.node_list()
    serializer_class = serializers.NodeSerializer
    filterset_class = filtersets.NodeFilterSet

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action == "retrieve":  # one node with its GPUs and their slices: three queries in all
            queryset = queryset.prefetch_related(
                Prefetch("gpus", queryset=GPU.objects.order_by("index").prefetch_related("slices"))
            )
        return queryset

    def get_serializer_class(self):
        return serializers.NodeDetailSerializer if self.action == "retrieve" else serializers.NodeSerializer

    @extend_schema(request=None, responses={200: PollReportSerializer})
    @action(detail=True, methods=["post"], permission_classes=[ModelActionPermissions])
    def poll(self, request, pk=None):
        """Poll this node's telemetry endpoint now and return what was ingested."""
        node = self.get_object()
        if not node.telemetry_url:
            raise exceptions.ValidationError({"telemetry_url": ["This node has no telemetry endpoint to poll."]})
        if node.state not in POLLED_STATES:
            raise exceptions.ValidationError({"state": [f"A {node.state} node is not polled."]})
        report = telemetry_poll(node_ids=[node.pk])
        return Response(PollReportSerializer(report.as_dict()).data)


class GPUViewSet(FleetdeckModelViewSet):
    queryset = GPU.objects.prefetch_related("slices")
    serializer_class = serializers.GPUSerializer
    filterset_class = filtersets.GPUFilterSet


class InventoryScopeViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = selectors.inventory_scope_list()
    serializer_class = serializers.InventoryScopeSerializer
    filterset_class = filtersets.InventoryScopeFilterSet


class SyncRunViewSet(viewsets.ReadOnlyModelViewSet):
    """Syncs asked for through POST /providers/{id}/sync/, newest first: poll one until it is finished."""

    queryset = SyncRun.objects.select_related("provider")
    serializer_class = serializers.SyncRunSerializer
    filterset_class = filtersets.SyncRunFilterSet
