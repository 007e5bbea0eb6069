"""Filter sets of the scheduler, shared by its pages and the REST API."""

import django_filters as filters

from core.filters import ModelMultipleKeyFilter, StableOrderingFilter
from fleet.choices import ProviderKind
from fleet.models import Team
from scheduler.choices import JobState, TargetKind
from scheduler.models import Dataset, Job, Placement


class DatasetFilterSet(filters.FilterSet):
    provider_kind = filters.MultipleChoiceFilter(choices=ProviderKind.choices)
    ordering = StableOrderingFilter(fields=("name", "size_bytes", "created"))

    class Meta:
        model = Dataset
        fields = ("name", "provider_kind", "region", "site")


class JobFilterSet(filters.FilterSet):
    state = filters.MultipleChoiceFilter(choices=JobState.choices)
    team = ModelMultipleKeyFilter(field_name="team__slug", queryset=Team.objects.all(), to_field_name="slug")
    ordering = StableOrderingFilter(fields=("name", "priority", "created", "state"))

    class Meta:
        model = Job
        fields = ("state", "team", "project", "gpu_model")


class PlacementFilterSet(filters.FilterSet):
    target_kind = filters.MultipleChoiceFilter(choices=TargetKind.choices)
    ordering = StableOrderingFilter(fields=("created", "total_usd"))

    class Meta:
        model = Placement
        fields = ("job", "active", "node", "provider_kind", "target_kind")
