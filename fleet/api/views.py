"""REST API viewsets of the fleet app."""

from core.api.views import FleetdeckModelViewSet
from fleet import filtersets, selectors
from fleet.api import serializers
from fleet.models import GPU, Project, Provider, Site, Team


class ProviderViewSet(FleetdeckModelViewSet):
    queryset = Provider.objects.all()
    serializer_class = serializers.ProviderSerializer
    filterset_class = filtersets.ProviderFilterSet


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


class GPUViewSet(FleetdeckModelViewSet):
    queryset = GPU.objects.all()
    serializer_class = serializers.GPUSerializer
    filterset_class = filtersets.GPUFilterSet
