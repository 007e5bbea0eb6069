"""Reads of the fleet app for pages and the API."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from fleet.choices import NodeState, ProviderKind
from fleet.models import GPU, Node


def node_list() -> QuerySet[Node]:
    """Nodes with what a list shows (site, provider, team, project, GPU count) fetched in one query."""
    return (
        Node.objects.select_related("site__provider", "team", "project")
        .annotate(gpu_count=Count("gpus"))
        .order_by("name", "pk")
    )


def node_detail(*, pk: int) -> Node:
    """One node with its site, provider, team, project and GPUs."""
    return Node.objects.select_related("site__provider", "team", "project").prefetch_related("gpus").get(pk=pk)


@dataclass(frozen=True)
class FleetOverview:
    """Counts for the overview page."""

    nodes_total: int
    gpus_total: int
    gpus_online: int
    nodes_by_state: dict[str, int]
    gpus_by_provider: dict[str, int]
    gpus_by_model: list[tuple[str, int]]


def fleet_overview() -> FleetOverview:
    """Node and GPU counts by state, provider and model, in three aggregate queries."""
    state_counts = dict(Node.objects.order_by().values_list("state").annotate(n=Count("pk")))
    gpu_counts = GPU.objects.aggregate(
        total=Count("pk"),
        online=Count("pk", filter=Q(node__state=NodeState.RUNNING)),
        **{kind.value: Count("pk", filter=Q(node__site__provider__kind=kind)) for kind in ProviderKind},
    )
    by_model = list(GPU.objects.order_by().values_list("model").annotate(n=Count("pk")).order_by("-n", "model"))
    return FleetOverview(
        nodes_total=sum(state_counts.values()),
        gpus_total=gpu_counts["total"],
        gpus_online=gpu_counts["online"],
        nodes_by_state={state.label: state_counts.get(state.value, 0) for state in NodeState},
        gpus_by_provider={kind.label: gpu_counts[kind.value] for kind in ProviderKind},
        gpus_by_model=by_model,
    )
