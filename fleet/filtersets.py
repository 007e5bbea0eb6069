"""Filter sets shared by the HTML lists and the REST API (one definition of every filter)."""

import django_filters as filters
from django import forms
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from core.choices import RunStatus
from core.filters import FleetdeckFilterSet, ModelMultipleKeyFilter, StableOrderingFilter
from fleet.choices import Continent, NodeLifecycle, NodeState, ProviderKind
from fleet.models import GPU, InventoryScope, Node, Project, Provider, Site, SyncRun, Team
from fleet.selectors import gpu_idle_q


class ProviderFilterSet(FleetdeckFilterSet):
    kind = filters.MultipleChoiceFilter(choices=ProviderKind.choices)
    ordering = StableOrderingFilter(fields=("name", "kind", "created"))

    class Meta:
        model = Provider
        fields = ("name", "kind", "account_id", "enabled")


class SiteFilterSet(FleetdeckFilterSet):
    provider_kind = filters.MultipleChoiceFilter(field_name="provider__kind", choices=ProviderKind.choices)
    continent = filters.MultipleChoiceFilter(choices=Continent.choices)
    ordering = StableOrderingFilter(fields=("name", "region", "continent"))

    class Meta:
        model = Site
        fields = ("provider", "name", "region", "zone", "continent")


class TeamFilterSet(FleetdeckFilterSet):
    ordering = StableOrderingFilter(fields=("name", "slug"))

    class Meta:
        model = Team
        fields = ("name", "slug")


class ProjectFilterSet(FleetdeckFilterSet):
    team_slug = filters.CharFilter(field_name="team__slug")
    ordering = StableOrderingFilter(fields=("name", "slug"))

    class Meta:
        model = Project
        fields = ("team", "slug")


# (field, ordering key) of the node list and API: NodeListFilterSet adds the page's figure columns.
NODE_ORDERING_FIELDS = (
    ("name", "name"),
    ("site__name", "site"),
    ("state", "state"),
    ("instance_type", "instance_type"),
    ("gpu_count", "gpu_count"),
    ("last_seen", "last_seen"),
)


class NodeFilterSet(FleetdeckFilterSet):
    """Nodes by free text, provider kind, site, state, lifecycle, team, project and GPU model."""

    q = filters.CharFilter(method="filter_q", label="Search")
    provider = filters.MultipleChoiceFilter(field_name="site__provider__kind", choices=ProviderKind.choices)
    site = ModelMultipleKeyFilter(field_name="site__name", queryset=Site.objects.all(), to_field_name="name")
    state = filters.MultipleChoiceFilter(choices=NodeState.choices)
    lifecycle = filters.MultipleChoiceFilter(choices=NodeLifecycle.choices)
    team = ModelMultipleKeyFilter(field_name="team__slug", queryset=Team.objects.all(), to_field_name="slug")
    gpu_model = filters.CharFilter(method="filter_gpu_model", label="GPU model")
    idle = filters.BooleanFilter(
        method="filter_idle",
        label="Has idle GPUs",
        # Django's NullBooleanSelect would send "unknown" for "any" and put it in every URL.
        widget=forms.Select(choices=[("", "Any"), ("true", "Yes"), ("false", "No")]),
    )
    ordering = StableOrderingFilter(fields=NODE_ORDERING_FIELDS)

    class Meta:
        model = Node
        fields = ("project", "instance_type", "external_id")

    def filter_q(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(
            Q(name__icontains=value) | Q(external_id__icontains=value) | Q(instance_type__icontains=value)
        )

    def filter_idle(self, queryset, name, value):
        has_idle = Exists(GPU.objects.filter(gpu_idle_q(timezone.now()), node=OuterRef("pk")))
        return queryset.filter(has_idle) if value else queryset.exclude(has_idle)

    def filter_gpu_model(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        # EXISTS rather than a join, so a node with eight matching GPUs is listed once.
        return queryset.filter(Exists(GPU.objects.filter(node=OuterRef("pk"), model__icontains=value)))


class NullsLastOrderingFilter(StableOrderingFilter):
    """StableOrderingFilter that puts rows without a value last either way (a node without a reading or a ledger
    row is "—", not the top of a descending sort)."""

    def get_ordering_value(self, param):
        name = super().get_ordering_value(param)
        if name.startswith("-"):
            return F(name[1:]).desc(nulls_last=True)
        return F(name).asc(nulls_last=True)


class NodeListFilterSet(NodeFilterSet):
    """The node page's filters: NodeFilterSet's, and health, utilisation and sorting by the columns that
    selectors.node_list_columns adds (its queryset must carry them; the API's does not, so it keeps
    NodeFilterSet)."""

    health = filters.ChoiceFilter(
        method="filter_health",
        label="Health",
        choices=[("ok", "OK"), ("unhealthy", "Unhealthy")],
        empty_label="Any",
    )
    util_max = filters.NumberFilter(field_name="util_pct", lookup_expr="lte", label="Utilisation ≤ (%)")
    ordering = NullsLastOrderingFilter(
        fields=(
            *NODE_ORDERING_FIELDS,
            ("util_pct", "util"),
            ("power_w", "power"),
            ("hour_usd", "cost"),
            ("health_rank", "health"),
        )
    )

    def filter_health(self, queryset, name, value):
        if value == "ok":
            return queryset.filter(health_rank__isnull=True)
        return queryset.filter(health_rank__isnull=False)


class GPUFilterSet(FleetdeckFilterSet):
    model = filters.CharFilter(lookup_expr="icontains")
    provider = filters.MultipleChoiceFilter(field_name="node__site__provider__kind", choices=ProviderKind.choices)
    ordering = StableOrderingFilter(fields=("uuid", "model", "index", "memory_mib"))

    class Meta:
        model = GPU
        fields = ("node", "uuid", "index")


class InventoryScopeFilterSet(FleetdeckFilterSet):
    provider_kind = filters.MultipleChoiceFilter(field_name="provider__kind", choices=ProviderKind.choices)
    failing = filters.BooleanFilter(method="filter_failing", label="Failing")
    ordering = StableOrderingFilter(
        fields=(
            ("provider__name", "provider"),
            ("scope", "scope"),
            ("last_attempt_at", "last_attempt_at"),
            ("last_success_at", "last_success_at"),
            ("consecutive_failures", "consecutive_failures"),
        )
    )

    class Meta:
        model = InventoryScope
        fields = ("provider", "scope")

    def filter_failing(self, queryset, name, value):
        if value is None:
            return queryset
        return queryset.filter(consecutive_failures__gt=0) if value else queryset.filter(consecutive_failures=0)


class SyncRunFilterSet(FleetdeckFilterSet):
    """Sync runs by provider and status, newest first unless ordered otherwise."""

    status = filters.MultipleChoiceFilter(choices=RunStatus.choices)
    ordering = StableOrderingFilter(fields=("requested_at", "finished_at"))

    class Meta:
        model = SyncRun
        fields = ("provider",)
